// Command gitops-sync applies a folder of manifests once, the way Argo CD does: through
// gitops-engine's engine.Sync (pkg/sync), which orders the objects into tasks (sync_tasks.go: kind
// order for built-in kinds, custom resources by name), applies them in that order (client-side
// kubectl apply, or server-side apply with --server-side) and waits for the result. It is the
// GitOps writer of tests/e2e/real.sh, so that tests do not hand-order their kubectl applies.
//
//	gitops-sync --kubeconfig FILE --namespace NS [--cluster-wide] [--server-side] [--manager NAME] DIR
//
// --namespace   the namespace objects without one go to, and the only one the engine caches
// --cluster-wide  cache every namespace and the cluster-scoped kinds (for cluster-scoped objects)
// --server-side server-side apply (Argo CD's ServerSideApply=true) with field manager --manager
//
//	(default argocd-controller, Argo CD's)
//
// Prints one line per object (order, kind/namespace/name, result, message) and exits 1 when the
// sync did not succeed, 2 on a usage or setup error. Objects are labelled as ours with an
// annotation (gitops-sync.rollout-guard.io/managed), as the gitops-engine agent does.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/argoproj/gitops-engine/pkg/cache"
	"github.com/argoproj/gitops-engine/pkg/engine"
	"github.com/argoproj/gitops-engine/pkg/sync"
	"github.com/argoproj/gitops-engine/pkg/sync/common"
	"github.com/argoproj/gitops-engine/pkg/utils/kube"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2/textlogger"
)

const managedAnnotation = "gitops-sync.rollout-guard.io/managed"

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the API server")
	namespace := flag.String("namespace", "default", "namespace of objects that name none; the only one cached")
	serverSide := flag.Bool("server-side", false, "server-side apply, as Argo CD's ServerSideApply=true")
	manager := flag.String("manager", "argocd-controller", "field manager for server-side apply")
	clusterWide := flag.Bool("cluster-wide", false, "cache every namespace and the cluster-scoped kinds, as Argo CD does for a cluster it manages (needed for cluster-scoped objects)")
	timeout := flag.Duration("timeout", 2*time.Minute, "give up after this long")
	verbosity := flag.Int("v", 0, "gitops-engine log verbosity (to stderr)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: gitops-sync --kubeconfig FILE --namespace NS [--server-side] [--manager NAME] DIR")
		os.Exit(2)
	}
	dir := flag.Arg(0)
	target, err := readManifests(dir)
	if err != nil {
		fatal(2, "reading %s: %v", dir, err)
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fatal(2, "kubeconfig %q: %v", *kubeconfig, err)
	}
	log := textlogger.NewLogger(textlogger.NewConfig(textlogger.Verbosity(*verbosity), textlogger.Output(os.Stderr)))
	namespaces := []string{*namespace}
	if *clusterWide {
		namespaces = nil
	}
	clusterCache := cache.NewClusterCache(config,
		cache.SetNamespaces(namespaces),
		cache.SetLogr(log),
		cache.SetPopulateResourceInfoHandler(func(un *unstructured.Unstructured, _ bool) (any, bool) {
			return un.GetAnnotations()[managedAnnotation] == "true", false
		}),
	)
	eng := engine.NewEngine(config, clusterCache, engine.WithLogr(log))
	cleanup, err := eng.Run()
	if err != nil {
		fatal(2, "starting gitops-engine: %v", err)
	}
	defer cleanup()

	opts := []sync.SyncOpt{sync.WithLogr(log), sync.WithPrune(false)}
	if *serverSide {
		opts = append(opts, sync.WithServerSideApply(true), sync.WithServerSideApplyManager(*manager))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	results, syncErr := eng.Sync(ctx, target, func(r *cache.Resource) bool {
		managed, _ := r.Info.(bool)
		return managed
	}, "e2e", *namespace, opts...)
	sort.SliceStable(results, func(i, j int) bool { return results[i].Order < results[j].Order })
	failed := syncErr != nil
	for _, r := range results {
		if r.Status == common.ResultCodeSyncFailed {
			failed = true
		}
		fmt.Printf("%d %s/%s/%s %s %s\n", r.Order, r.ResourceKey.Kind, r.ResourceKey.Namespace,
			r.ResourceKey.Name, r.Status, strings.ReplaceAll(r.Message, "\n", " "))
	}
	if syncErr != nil {
		fmt.Printf("sync failed: %v\n", syncErr)
	}
	if failed {
		os.Exit(1)
	}
}

// readManifests reads every *.yaml, *.yml and *.json file under dir (multi-document YAML) and
// marks each object as managed by this tool.
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
	if err != nil {
		return nil, err
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("no manifests found")
	}
	for _, obj := range res {
		ann := obj.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann[managedAnnotation] = "true"
		obj.SetAnnotations(ann)
	}
	return res, nil
}

func fatal(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gitops-sync: error: "+format+"\n", args...)
	os.Exit(code)
}
