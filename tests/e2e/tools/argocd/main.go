// Command argocd-diff compares a folder of Git manifests with what the API server holds, through
// Argo CD's own diff code, as Argo CD's application controller does when it decides whether an
// application is in sync (controller/state.go, CompareAppState, Argo CD v3.2.0): it builds the
// diff configuration with util/argo/diff's DiffConfigBuilder (the Application's ignoreDifferences,
// Argo CD's default resource overrides, annotation tracking, the GVK parser from the server's
// OpenAPI, field manager argocd-controller) and runs util/argo/diff.StateDiffs, which normalizes
// with util/argo/normalizers and diffs with gitops-engine's pkg/diff. It is not a reimplementation:
// only the Application and the cluster cache are replaced (by flags and by a GET of each object).
//
//	argocd-diff --kubeconfig FILE --diff legacy|server-side [--namespace NS]
//	            [--ignore-differences FILE] [--server-side-apply] [--include-mutation-webhook]
//	            [--annotate KEY=VALUE]... [--show-diff] DIR
//
// --diff legacy is Argo CD's default diff, computed inside Argo CD (the API server is only read,
// its admission never runs): a three-way diff against the last-applied-configuration annotation
// (a two-way diff without one), or, with --server-side-apply, the structured merge diff (as
// field manager argocd-controller) the controller uses for an application that syncs with
// ServerSideApply=true.
//
// --diff server-side is Argo CD's ServerSideDiff (compare-options ServerSideDiff=true): each object
// is applied with server-side apply in dry-run mode as field manager argocd-controller, by
// gitops-engine's kubectl dry-run applier made with argo-cd's util/kube.ManageServerSideDiffDryRuns
// as the controller makes it, so admission webhooks run; the result is compared with the live
// object. Changes mutating webhooks make to fields argocd-controller does not own are dropped, as
// by default in Argo CD, unless --include-mutation-webhook (IncludeMutationWebhook=true).
//
// --ignore-differences FILE (YAML or JSON): a list of entries in the format of an Application's
// spec.ignoreDifferences, or an object with ignoreDifferences or spec.ignoreDifferences (an
// Application or its spec as written). --annotate adds KEY=VALUE to each Git object before the
// diff (what the sync added: gitops-sync's gitops-sync.rollout-guard.io/managed=true).
//
// The resource overrides are those of an argocd-cm without resource.customizations: status
// ignored on every kind (ignoreResourceStatusField defaults to all). Prints one line per object,
// "KIND NS/NAME modified=true|false" (NS empty for a cluster-scoped object), with --show-diff
// each modified object's normalized live against its predicted live state (unified, YAML).
// Exits 0 when every object is in sync, 1 when any differs, 2 on a usage or setup error.
//
// Not run: the application controller around the diff (its cluster cache, the repo server, the
// Application's status) and the sync itself, so sync options such as RespectIgnoreDifferences=true
// (controller/sync.go) are not exercised here; gitops-sync (tests/e2e/tools/gitops) syncs.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/argoproj/argo-cd/v3/common"
	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	argodiff "github.com/argoproj/argo-cd/v3/util/argo/diff"
	"github.com/argoproj/argo-cd/v3/util/argo/normalizers"
	argokube "github.com/argoproj/argo-cd/v3/util/kube"
	gitopsdiff "github.com/argoproj/gitops-engine/pkg/diff"
	"github.com/argoproj/gitops-engine/pkg/utils/kube"
	"github.com/argoproj/gitops-engine/pkg/utils/tracing"
	"github.com/pmezard/go-difflib/difflib"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2/textlogger"
	"sigs.k8s.io/yaml"
)

type annotations map[string]string

func (a annotations) String() string { return fmt.Sprint(map[string]string(a)) }
func (a annotations) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	a[k] = v
	return nil
}

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the API server")
	mode := flag.String("diff", "", "legacy or server-side")
	namespace := flag.String("namespace", "default", "namespace of namespaced objects that name none")
	ignoreFile := flag.String("ignore-differences", "", "YAML/JSON file with the Application's spec.ignoreDifferences")
	ssa := flag.Bool("server-side-apply", false, "the application syncs with ServerSideApply=true (legacy diff: structured merge diff)")
	includeMutation := flag.Bool("include-mutation-webhook", false, "server-side diff: keep every webhook mutation (IncludeMutationWebhook=true)")
	showDiff := flag.Bool("show-diff", false, "print the diff of each modified object")
	verbosity := flag.Int("v", 0, "gitops-engine log verbosity (to stderr)")
	extra := annotations{}
	flag.Var(extra, "annotate", "KEY=VALUE added to every Git object's annotations (repeatable)")
	flag.Parse()
	if flag.NArg() != 1 || (*mode != "legacy" && *mode != "server-side") {
		fmt.Fprintln(os.Stderr, "usage: argocd-diff --kubeconfig FILE --diff legacy|server-side [--namespace NS] [--ignore-differences FILE] [--server-side-apply] [--include-mutation-webhook] [--annotate KEY=VALUE]... [--show-diff] DIR")
		os.Exit(2)
	}
	targets, err := readManifests(flag.Arg(0))
	if err != nil {
		fatal("reading %s: %v", flag.Arg(0), err)
	}
	ignores := []v1alpha1.ResourceIgnoreDifferences{}
	if *ignoreFile != "" {
		if ignores, err = readIgnores(*ignoreFile); err != nil {
			fatal("reading %s: %v", *ignoreFile, err)
		}
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fatal("kubeconfig %q: %v", *kubeconfig, err)
	}
	log := textlogger.NewLogger(textlogger.NewConfig(textlogger.Verbosity(*verbosity), textlogger.Output(os.Stderr)))

	// The live objects, read as the cluster cache would hold them (whole, managedFields included).
	disco, err := discovery.NewDiscoveryClientForConfig(config)
	if err != nil {
		fatal("discovery: %v", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))
	dyn, err := dynamic.NewForConfig(config)
	if err != nil {
		fatal("dynamic client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lives := make([]*unstructured.Unstructured, len(targets))
	for i, t := range targets {
		if len(extra) > 0 {
			ann := t.GetAnnotations()
			if ann == nil {
				ann = map[string]string{}
			}
			for k, v := range extra {
				ann[k] = v
			}
			t.SetAnnotations(ann)
		}
		gvk := t.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			fatal("%s %s: %v", gvk, t.GetName(), err)
		}
		res := dyn.Resource(m.Resource)
		var live *unstructured.Unstructured
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			if t.GetNamespace() == "" {
				t.SetNamespace(*namespace)
			}
			live, err = res.Namespace(t.GetNamespace()).Get(ctx, t.GetName(), metav1.GetOptions{})
		} else {
			t.SetNamespace("")
			live, err = res.Get(ctx, t.GetName(), metav1.GetOptions{})
		}
		switch {
		case apierrors.IsNotFound(err):
			live = nil // to be created: a difference
		case err != nil:
			fatal("reading %s %s/%s: %v", gvk.Kind, t.GetNamespace(), t.GetName(), err)
		}
		lives[i] = live
	}

	// The diff configuration, built as controller/state.go builds it.
	kubectl := &kube.KubectlCmd{Log: log, Tracer: &tracing.NopTracer{}}
	openAPISchema, gvkParser, err := kubectl.LoadOpenAPISchema(config)
	if err != nil {
		fatal("loading the OpenAPI schema: %v", err)
	}
	overrides := map[string]v1alpha1.ResourceOverride{
		"*/*": {IgnoreDifferences: v1alpha1.OverrideIgnoreDiff{JSONPointers: []string{"/status"}}},
	}
	builder := argodiff.NewDiffConfigBuilder().
		WithDiffSettings(ignores, overrides, false, normalizers.IgnoreNormalizerOpts{JQExecutionTimeout: time.Second}).
		WithTracking(common.LabelKeyAppInstance, string(v1alpha1.TrackingMethodAnnotation)).
		WithNoCache().
		WithLogger(log).
		WithGVKParser(gvkParser).
		WithManager(common.ArgoCDSSAManager).
		WithServerSideDiff(*mode == "server-side")
	if *includeMutation {
		builder.WithIgnoreMutationWebhook(false)
	}
	if *mode == "server-side" {
		applier, cleanup, err := argokube.ManageServerSideDiffDryRuns(config, openAPISchema, nil)
		if err != nil {
			fatal("server-side dry-run applier: %v", err)
		}
		defer cleanup()
		builder.WithServerSideDryRunner(gitopsdiff.NewK8sServerSideDryRunner(applier))
	}
	if *ssa {
		builder.WithStructuredMergeDiff(true)
	}
	diffConfig, err := builder.Build()
	if err != nil {
		fatal("diff configuration: %v", err)
	}
	results, err := argodiff.StateDiffs(lives, targets, diffConfig)
	if err != nil {
		fatal("%v", err)
	}
	for i, r := range results.Diffs {
		t := targets[i]
		fmt.Printf("%s %s/%s modified=%t\n", t.GetKind(), t.GetNamespace(), t.GetName(), r.Modified)
		if *showDiff && r.Modified {
			fmt.Print(unified(r.NormalizedLive, r.PredictedLive))
		}
	}
	if results.Modified {
		os.Exit(1)
	}
}

// unified is a unified diff of two JSON documents as YAML: live (-) against predicted (+).
func unified(live, predicted []byte) string {
	toYAML := func(b []byte) string {
		if y, err := yaml.JSONToYAML(b); err == nil {
			return string(y)
		}
		return string(b)
	}
	text, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(toYAML(live)), B: difflib.SplitLines(toYAML(predicted)),
		FromFile: "live", ToFile: "predicted", Context: 3,
	})
	return text
}

// readManifests reads every *.yaml, *.yml and *.json file under dir (multi-document YAML).
func readManifests(dir string) ([]*unstructured.Unstructured, error) {
	var res []*unstructured.Unstructured
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
		default:
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		items, err := kube.SplitYAML(data)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		res = append(res, items...)
		return nil
	})
	if err == nil && len(res) == 0 {
		err = fmt.Errorf("no manifests found")
	}
	return res, err
}

// readIgnores reads ignoreDifferences entries: a list, or an object holding ignoreDifferences
// or spec.ignoreDifferences.
func readIgnores(path string) ([]v1alpha1.ResourceIgnoreDifferences, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var list []v1alpha1.ResourceIgnoreDifferences
	if yaml.UnmarshalStrict(data, &list) == nil {
		return list, nil
	}
	var doc struct {
		IgnoreDifferences []v1alpha1.ResourceIgnoreDifferences `json:"ignoreDifferences"`
		Spec              struct {
			IgnoreDifferences []v1alpha1.ResourceIgnoreDifferences `json:"ignoreDifferences"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	list = append(doc.IgnoreDifferences, doc.Spec.IgnoreDifferences...)
	if len(list) == 0 {
		return nil, fmt.Errorf("no ignoreDifferences entries")
	}
	return list, nil
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "argocd-diff: error: "+format+"\n", args...)
	os.Exit(2)
}
