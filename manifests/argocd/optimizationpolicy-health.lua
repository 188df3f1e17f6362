-- Argo CD health of a GreenMatrix OptimizationPolicy, read from the conditions the operator writes.
-- Progressing until the operator has seen the current generation; Suspended while spec.paused;
-- Degraded when the operator rejects it (Ready=False); else Healthy.
local hs = {}

local generation = obj.metadata and obj.metadata.generation or 0
if obj.status == nil or obj.status.observedGeneration == nil or obj.status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "waiting for GreenMatrix to accept generation " .. tostring(generation)
  return hs
end

local ready = nil
for _, c in ipairs(obj.status.conditions or {}) do
  if c.type == "Ready" then
    ready = c
  end
end
if ready == nil or ready.status == "Unknown" then
  hs.status = "Progressing"
  hs.message = "no Ready condition yet"
  return hs
end
if ready.status ~= "True" then
  hs.status = "Degraded"
  hs.message = ready.reason .. ": " .. (ready.message or "")
  return hs
end
if obj.spec ~= nil and obj.spec.paused == true then
  hs.status = "Suspended"
  hs.message = "paused: recommendations continue, nothing is applied"
  return hs
end
hs.status = "Healthy"
hs.message = ready.message or ""
return hs
