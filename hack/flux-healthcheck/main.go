// Command healthcheck evaluates the TrtAotiModel health-check expressions of a Flux
// Kustomization with Flux's own evaluator (github.com/fluxcd/pkg/runtime/cel, the code
// kustomize-controller runs for spec.healthCheckExprs), so the expressions shipped in
// deploy/gitops/flux/kustomizations.yaml are tested, not just written down.
//
//	healthcheck KUSTOMIZATIONS.yaml < objects.json
//
// reads a JSON array of objects on stdin and prints a JSON array of
// {"status": "InProgress|Failed|Current", "error": "..."} in the same order.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/runtime/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

type kustomization struct {
	Kind string `json:"kind"`
	Spec struct {
		HealthCheckExprs []kustomize.CustomHealthCheck `json:"healthCheckExprs"`
	} `json:"spec"`
}

type verdict struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: healthcheck KUSTOMIZATIONS.yaml < objects.json")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	evaluators, err := loadEvaluators(path)
	if err != nil {
		return err
	}
	var objects []map[string]any
	if err := json.NewDecoder(os.Stdin).Decode(&objects); err != nil {
		return fmt.Errorf("reading objects from stdin: %w", err)
	}
	out := make([]verdict, 0, len(objects))
	for _, object := range objects {
		u := &unstructured.Unstructured{Object: object}
		evaluator, ok := evaluators[u.GetAPIVersion()+"/"+u.GetKind()]
		if !ok {
			return fmt.Errorf("no healthCheckExprs for %s %s in %s", u.GetAPIVersion(), u.GetKind(), path)
		}
		result, err := evaluator.Evaluate(context.Background(), u)
		if err != nil {
			out = append(out, verdict{Status: "Error", Error: err.Error()})
			continue
		}
		out = append(out, verdict{Status: string(result.Status)})
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// loadEvaluators compiles every healthCheckExprs entry of every Kustomization in the
// multi-document YAML file, keyed by "apiVersion/kind".
func loadEvaluators(path string) (map[string]*cel.StatusEvaluator, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	evaluators := map[string]*cel.StatusEvaluator{}
	for _, doc := range splitDocuments(data) {
		var k kustomization
		if err := yaml.Unmarshal(doc, &k); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if k.Kind != "Kustomization" {
			continue
		}
		for _, check := range k.Spec.HealthCheckExprs {
			evaluator, err := cel.NewStatusEvaluator(&check.HealthCheckExpressions)
			if err != nil {
				return nil, fmt.Errorf("%s: %s %s: %w", path, check.APIVersion, check.Kind, err)
			}
			evaluators[check.APIVersion+"/"+check.Kind] = evaluator
		}
	}
	if len(evaluators) == 0 {
		return nil, fmt.Errorf("%s: no Kustomization with healthCheckExprs", path)
	}
	return evaluators, nil
}
