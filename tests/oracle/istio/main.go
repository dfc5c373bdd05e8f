// oracle-istio: Istio's own admission verdict on every VirtualService and DestinationRule in
// the input, obtained by sending each object as an AdmissionReview (CREATE) through Istio's
// validation webhook handler (pkg/webhooks/validation/server, exactly as istiod registers it:
// Schemas collections.PilotGatewayAPI(), DomainSuffix cluster.local), in memory, no socket.
// Output: one JSON line per object (see ../README.md).
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"istio.io/istio/pkg/config/schema/collections"
	istiolog "istio.io/istio/pkg/log"
	"istio.io/istio/pkg/webhooks/validation/server"

	"github.com/rollout-guard/rollout-guard/tests/oracle/input"
)

type verdict struct {
	Case      string   `json:"case"`
	File      string   `json:"file"`
	Document  int      `json:"document"`
	Kind      string   `json:"kind"`
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Verdict   string   `json:"verdict"`
	Source    string   `json:"source"`
	Function  string   `json:"function"`
	Message   string   `json:"message"`
	Warnings  []string `json:"warnings,omitempty"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: oracle-istio PATH|- ...")
		os.Exit(2)
	}
	cases, err := input.ReadCases(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "oracle-istio:", err)
		os.Exit(2)
	}
	// Istio's scopes log to stdout; the verdicts are the only output there.
	for _, sc := range istiolog.Scopes() {
		sc.SetOutputLevel(istiolog.NoneLevel)
	}
	mux := http.NewServeMux()
	if _, err := server.New(server.Options{Schemas: collections.PilotGatewayAPI(), DomainSuffix: "cluster.local", Mux: mux}); err != nil {
		fmt.Fprintln(os.Stderr, "oracle-istio: webhook:", err)
		os.Exit(2)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	for _, c := range cases {
		for _, d := range input.Latest(c.Docs) {
			if d.Group != "networking.istio.io" || (d.Kind != "VirtualService" && d.Kind != "DestinationRule") {
				continue
			}
			v := verdict{Case: c.Name, File: d.File, Document: d.Index, Kind: d.Kind, Namespace: d.Namespace, Name: d.Name,
				Source: "istio-validation", Function: "Validate" + d.Kind}
			allowed, msg, warns, err := review(mux, d)
			if err != nil {
				fmt.Fprintln(os.Stderr, "oracle-istio:", d.File, d.Index, err)
				os.Exit(2)
			}
			v.Warnings = warns
			if allowed {
				v.Verdict = "accept"
			} else {
				v.Verdict = "refuse"
				v.Message = msg
				if strings.HasPrefix(msg, "cannot decode") || strings.HasPrefix(msg, "error decoding") {
					v.Function = "crd.ConvertObject"
				} else if strings.HasPrefix(msg, "unknown field") {
					v.Function = "checkFields"
				}
			}
			_ = enc.Encode(v)
		}
	}
}

func review(mux *http.ServeMux, d input.Doc) (bool, string, []string, error) {
	obj := map[string]any{}
	for k, v := range d.Object {
		obj[k] = v
	}
	md, _ := obj["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
	}
	md2 := map[string]any{}
	for k, v := range md {
		md2[k] = v
	}
	md2["namespace"] = d.Namespace
	obj["metadata"] = md2
	raw, err := json.Marshal(obj)
	if err != nil {
		return false, "", nil, err
	}
	version := d.Version
	ar := map[string]any{
		"apiVersion": "admission.k8s.io/v1",
		"kind":       "AdmissionReview",
		"request": map[string]any{
			"uid":       "oracle",
			"kind":      map[string]any{"group": d.Group, "version": version, "kind": d.Kind},
			"resource":  map[string]any{"group": d.Group, "version": version, "resource": strings.ToLower(d.Kind) + "s"},
			"name":      d.Name,
			"namespace": d.Namespace,
			"operation": "CREATE",
			"userInfo":  map[string]any{"username": "oracle"},
			"object":    json.RawMessage(raw),
		},
	}
	body, _ := json.Marshal(ar)
	req := httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return false, "", nil, fmt.Errorf("webhook HTTP %d: %s", rec.Code, rec.Body.String())
	}
	var out struct {
		Response struct {
			Allowed  bool     `json:"allowed"`
			Warnings []string `json:"warnings"`
			Result   *struct {
				Message string `json:"message"`
			} `json:"status"`
		} `json:"response"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		return false, "", nil, fmt.Errorf("webhook answer: %v", err)
	}
	msg := ""
	if out.Response.Result != nil {
		msg = out.Response.Result.Message
	}
	return out.Response.Allowed, msg, out.Response.Warnings, nil
}
