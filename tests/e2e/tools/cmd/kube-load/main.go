// Command kube-load puts a large state into an API server fast, and then storms it with updates,
// for the kube-source benchmark of `make bench` (benches/kube.rs):
//
//	kube-load create --kubeconfig FILE --objects FILE.jsonl [--workers 48] [--status all|paused|none] [--deadline 10m]
//	kube-load storm  --kubeconfig FILE --objects FILE.jsonl --rate 2000 --duration 30s --max 60000
//
// FILE.jsonl holds one object a line (Rollouts, VirtualServices, DestinationRules, Services, in
// their live form, as benches/support/gen.rs writes them).
//
// create makes the namespaces the objects name, then creates every object from a pool of workers
// (client-side rate limiting off), then writes Rollout status through the status subresource,
// as the controller would have: every Rollout's (all), only those whose status says phase Paused
// (paused: the ones mid-canary, whose live weights the drift guard reads), or none. No create
// starts after --deadline (objects are created in file order, so what is loaded is a prefix). Server-set metadata (uid, resourceVersion,
// generation, creationTimestamp) is dropped; a Service keeps its clusterIP. An object that exists
// already is an error: start from an empty etcd.
//
// storm merge-patches an annotation of the VirtualServices and Rollouts in turn, at a paced total
// rate (a token every 1/rate s shared by the workers), until --duration passes or --max patches
// were sent. A patch that cannot keep its slot (all workers busy) is counted as late, not queued.
//
// Both print one JSON line on stdout at the end with what they did; progress goes to stderr.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

var resources = map[string]schema.GroupVersionResource{
	"Rollout":         {Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"},
	"VirtualService":  {Group: "networking.istio.io", Version: "v1beta1", Resource: "virtualservices"},
	"DestinationRule": {Group: "networking.istio.io", Version: "v1beta1", Resource: "destinationrules"},
	"Service":         {Group: "", Version: "v1", Resource: "services"},
}

var namespaceGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	mode := os.Args[1]
	flags := flag.NewFlagSet("kube-load "+mode, flag.ExitOnError)
	kubeconfig := flags.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the API server")
	objectsFile := flags.String("objects", "", "objects, one JSON document a line")
	workers := flags.Int("workers", 48, "concurrent requests")
	rate := flags.Float64("rate", 2000, "storm: patches per second in total")
	duration := flags.Duration("duration", 30*time.Second, "storm: how long")
	maxPatches := flags.Int("max", 100000, "storm: at most this many patches")
	deadline := flags.Duration("deadline", 10*time.Minute, "create: start no create after this")
	status := flags.String("status", "all", "create: which Rollouts get their status written: all, paused, none")
	_ = flags.Parse(os.Args[2:])
	if *objectsFile == "" {
		usage()
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fatal("kubeconfig %q: %v", *kubeconfig, err)
	}
	// No client-side throttling: the server's own limits are what is measured.
	cfg.QPS = -1
	cfg.RateLimiter = nil
	cfg.ContentType = "application/json"
	objects, err := readObjects(*objectsFile)
	if err != nil {
		fatal("%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var report any
	switch mode {
	case "create":
		if *status != "all" && *status != "paused" && *status != "none" {
			fatal("--status must be all, paused or none, got %q", *status)
		}
		report, err = create(ctx, cfg, objects, *workers, *status, *deadline)
	case "storm":
		report, err = storm(ctx, cfg, objects, *workers, *rate, *duration, *maxPatches)
	default:
		usage()
	}
	if err != nil {
		fatal("%s: %v", mode, err)
	}
	out, _ := json.Marshal(report)
	fmt.Println(string(out))
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: kube-load create|storm --kubeconfig FILE --objects FILE.jsonl [flags]")
	os.Exit(2)
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kube-load: "+format+"\n", args...)
	os.Exit(1)
}

func readObjects(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []*unstructured.Unstructured
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; scanner.Scan(); line++ {
		if len(scanner.Bytes()) == 0 {
			continue
		}
		var obj map[string]any
		if err := json.Unmarshal(scanner.Bytes(), &obj); err != nil {
			return nil, fmt.Errorf("%s:%d: expected one JSON object a line: %v", path, line, err)
		}
		u := &unstructured.Unstructured{Object: obj}
		if _, ok := resources[u.GetKind()]; !ok {
			return nil, fmt.Errorf("%s:%d: kind %q is none of Rollout, VirtualService, DestinationRule, Service", path, line, u.GetKind())
		}
		out = append(out, u)
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return out, nil
}

// pool runs do(i) for i in 0..n on `workers` goroutines; returns the errors (the first few kept).
func pool(n, workers int, do func(i int) error) (failed int, first []string) {
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := do(i); err != nil {
					mu.Lock()
					failed++
					if len(first) < 5 {
						first = append(first, err.Error())
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return failed, first
}

type createReport struct {
	Objects          int            `json:"objects"`
	Created          int64          `json:"created"`
	DeadlineHit      bool           `json:"deadline_hit"`
	ByKind           map[string]int `json:"by_kind"`
	Namespaces       int            `json:"namespaces"`
	CreateSeconds    float64        `json:"create_seconds"`
	StatusUpdates    int            `json:"status_updates"`
	StatusWhich      string         `json:"status_which"`
	StatusSeconds    float64        `json:"status_seconds"`
	TotalSeconds     float64        `json:"total_seconds"`
	Workers          int            `json:"workers"`
	Errors           int            `json:"errors"`
	FirstErrors      []string       `json:"first_errors,omitempty"`
	ObjectsPerSecond float64        `json:"objects_per_second"`
}

func create(ctx context.Context, cfg *rest.Config, objects []*unstructured.Unstructured, workers int, which string, deadline time.Duration) (*createReport, error) {
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	started := time.Now()
	report := &createReport{Objects: len(objects), ByKind: map[string]int{}, Workers: workers, StatusWhich: which}
	seen := map[string]bool{}
	var namespaces []string
	for _, o := range objects {
		report.ByKind[o.GetKind()]++
		if ns := o.GetNamespace(); ns != "" && !seen[ns] {
			seen[ns] = true
			namespaces = append(namespaces, ns)
		}
	}
	sort.Strings(namespaces)
	report.Namespaces = len(namespaces)
	failed, first := pool(len(namespaces), workers, func(i int) error {
		ns := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": namespaces[i]},
		}}
		_, err := client.Resource(namespaceGVR).Create(ctx, ns, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("namespace %s: %v", namespaces[i], err)
		}
		return nil
	})
	if failed > 0 {
		return nil, fmt.Errorf("%d namespaces not created: %v", failed, first)
	}

	statuses := make([]map[string]any, len(objects))
	createStart := time.Now()
	var done, created atomic.Int64
	var late atomic.Bool
	go progress(ctx, "created", &done, len(objects))
	failed, first = pool(len(objects), workers, func(i int) error {
		if time.Since(createStart) > deadline {
			late.Store(true)
			return nil
		}
		o := objects[i].DeepCopy()
		if status, ok := o.Object["status"].(map[string]any); ok && o.GetKind() == "Rollout" {
			statuses[i] = status
		}
		delete(o.Object, "status")
		meta, _ := o.Object["metadata"].(map[string]any)
		for _, k := range []string{"uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"} {
			delete(meta, k)
		}
		_, err := client.Resource(resources[o.GetKind()]).Namespace(o.GetNamespace()).Create(ctx, o, metav1.CreateOptions{})
		done.Add(1)
		if err == nil {
			created.Add(1)
		}
		if err != nil {
			return fmt.Errorf("create %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
		return nil
	})
	report.CreateSeconds = time.Since(createStart).Seconds()
	report.Created = created.Load()
	report.DeadlineHit = late.Load()
	report.Errors += failed
	report.FirstErrors = append(report.FirstErrors, first...)

	var withStatus []int
	for i, s := range statuses {
		if s != nil && (which == "all" || which == "paused" && s["phase"] == "Paused") {
			withStatus = append(withStatus, i)
		}
	}
	statusStart := time.Now()
	failed, first = pool(len(withStatus), workers, func(k int) error {
		o := objects[withStatus[k]]
		patch, err := json.Marshal(map[string]any{"status": statuses[withStatus[k]]})
		if err != nil {
			return err
		}
		_, err = client.Resource(resources["Rollout"]).Namespace(o.GetNamespace()).
			Patch(ctx, o.GetName(), types.MergePatchType, patch, metav1.PatchOptions{}, "status")
		if err != nil {
			return fmt.Errorf("status of Rollout %s/%s: %v", o.GetNamespace(), o.GetName(), err)
		}
		return nil
	})
	report.StatusUpdates = len(withStatus) - failed
	report.StatusSeconds = time.Since(statusStart).Seconds()
	report.Errors += failed
	report.FirstErrors = append(report.FirstErrors, first...)
	report.TotalSeconds = time.Since(started).Seconds()
	report.ObjectsPerSecond = float64(report.Created) / report.CreateSeconds
	return report, nil
}

func progress(ctx context.Context, what string, done *atomic.Int64, total int) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			n := done.Load()
			fmt.Fprintf(os.Stderr, "kube-load: %s %d of %d\n", what, n, total)
			if int(n) >= total {
				return
			}
		}
	}
}

type stormReport struct {
	Targets      int     `json:"targets"`
	Rate         float64 `json:"rate"`
	Sent         int64   `json:"sent"`
	Errors       int64   `json:"errors"`
	Late         int64   `json:"late"`
	Seconds      float64 `json:"seconds"`
	AchievedRate float64 `json:"achieved_rate"`
	FirstError   string  `json:"first_error,omitempty"`
}

func storm(ctx context.Context, cfg *rest.Config, objects []*unstructured.Unstructured, workers int,
	rate float64, duration time.Duration, maxPatches int) (*stormReport, error) {
	if rate <= 0 {
		return nil, fmt.Errorf("--rate must be positive, got %v", rate)
	}
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	var targets []*unstructured.Unstructured
	for _, o := range objects {
		if k := o.GetKind(); k == "VirtualService" || k == "Rollout" {
			targets = append(targets, o)
		}
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("no VirtualService or Rollout among the objects")
	}
	report := &stormReport{Targets: len(targets), Rate: rate}
	slots := make(chan int64, workers)
	var sent, errors atomic.Int64
	var firstError atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range slots {
				o := targets[int(n)%len(targets)]
				patch := fmt.Sprintf(`{"metadata":{"annotations":{"bench.rollout-guard.io/storm":"%d"}}}`, n)
				_, err := client.Resource(resources[o.GetKind()]).Namespace(o.GetNamespace()).
					Patch(ctx, o.GetName(), types.MergePatchType, []byte(patch), metav1.PatchOptions{})
				sent.Add(1)
				if err != nil {
					errors.Add(1)
					firstError.CompareAndSwap(nil, fmt.Sprintf("%s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err))
				}
			}
		}()
	}
	fmt.Fprintf(os.Stderr, "kube-load: storm of %.0f patches/s over %d objects for %v (at most %d)\n",
		rate, len(targets), duration, maxPatches)
	started := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	var late int64
	for n := int64(0); n < int64(maxPatches); n++ {
		at := started.Add(time.Duration(n) * interval)
		if at.Sub(started) >= duration || ctx.Err() != nil {
			break
		}
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		select {
		case slots <- n:
		default:
			late++
		}
	}
	close(slots)
	wg.Wait()
	report.Seconds = time.Since(started).Seconds()
	report.Sent = sent.Load()
	report.Errors = errors.Load()
	report.Late = late
	report.AchievedRate = float64(report.Sent) / report.Seconds
	if e, ok := firstError.Load().(string); ok {
		report.FirstError = e
	}
	return report, nil
}
