-- Argo CD health of a GreenMatrix WorkloadProfile, read from the conditions the operator writes.
-- Progressing until the operator has evaluated the current generation; Degraded when it cannot
-- recommend (Ready=False), cannot read the target's metrics, or another autoscaler blocks an Auto
-- policy; Suspended while auto-apply is paused; else Healthy.
local hs = {}

local function condition(type)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local generation = obj.metadata and obj.metadata.generation or 0
if obj.status == nil or obj.status.observedGeneration == nil or obj.status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "waiting for GreenMatrix to evaluate generation " .. tostring(generation)
  return hs
end

local ready = condition("Ready")
if ready == nil or ready.status == "Unknown" then
  hs.status = "Progressing"
  hs.message = ready and ready.message or "no Ready condition yet"
  return hs
end
if ready.status ~= "True" then
  hs.status = "Degraded"
  hs.message = ready.reason .. ": " .. (ready.message or "")
  return hs
end

local auto = condition("AutoApply")
if auto ~= nil and auto.reason == "Paused" then
  hs.status = "Suspended"
  hs.message = auto.message
  return hs
end

local conflict = condition("Conflict")
if conflict ~= nil and conflict.status == "True" then
  hs.status = "Degraded"
  hs.message = conflict.reason .. ": " .. (conflict.message or "")
  return hs
end

local metrics = condition("MetricsAvailable")
if metrics ~= nil and metrics.status == "False" then
  hs.status = "Degraded"
  hs.message = metrics.reason .. ": " .. (metrics.message or "")
  return hs
end

hs.status = "Healthy"
hs.message = ready.message or ""
local rolled = condition("RolledBack")
if rolled ~= nil and rolled.status == "True" then
  hs.message = "rolled back: " .. (rolled.message or "")
end
return hs
