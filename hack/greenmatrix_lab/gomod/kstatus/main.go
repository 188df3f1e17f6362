// Command kstatus prints what kstatus (sigs.k8s.io/cli-utils), the status library of kpt, Flux and
// cli-utils, computes for each object it is given: one JSON object per line on stdin, one JSON
// result ({"status": ..., "message": ...}) per line on stdout. The tests read the statuses the
// operator really writes through it.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		// As the API server's clients decode it: integers stay int64, which kstatus requires.
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(in.Bytes()); err != nil {
			fmt.Fprintln(os.Stderr, "not a Kubernetes object:", err)
			os.Exit(2)
		}
		result, err := status.Compute(obj)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kstatus:", err)
			os.Exit(1)
		}
		if err := out.Encode(map[string]string{"status": string(result.Status), "message": result.Message}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}
