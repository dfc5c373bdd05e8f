// Command vs-watch records every stored version of one Istio VirtualService, for the flap
// measurements of tests/e2e/real.sh: it lists the object (by name), then watches from the list's
// resourceVersion, so no version is missed, and prints one line per version:
//
//	UNIX_SECONDS.MILLIS EVENT RESOURCE_VERSION WEIGHTS MANAGER
//
// WEIGHTS are the destination weights of each http route, slash-separated, routes separated by
// commas ("80/20"; "-" when there is no http route); MANAGER is the field manager of the newest
// managedFields entry (who wrote this version). The first line (event INITIAL) is the version the
// watch starts from. If the API server cannot continue the watch (410 Expired, e.g. after it
// restarted), vs-watch lists again and prints the object with event RELIST: versions between the
// two may be missing, and the line says so.
//
//	vs-watch --kubeconfig FILE --namespace NS NAME
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
)

var vsGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the API server")
	namespace := flag.String("namespace", "default", "namespace of the VirtualService")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: vs-watch --kubeconfig FILE --namespace NS NAME")
		os.Exit(2)
	}
	name := flag.Arg(0)
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fatal("kubeconfig %q: %v", *kubeconfig, err)
	}
	client := dynamic.NewForConfigOrDie(cfg).Resource(vsGVR).Namespace(*namespace)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	rv, err := list(ctx, client, sel, "INITIAL")
	if err != nil {
		fatal("list VirtualService %s/%s: %v", *namespace, name, err)
	}
	for ctx.Err() == nil {
		w, err := client.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			fmt.Fprintf(os.Stderr, "vs-watch: watch from %s: %v; listing again\n", rv, err)
			if rv, err = list(ctx, client, sel, "RELIST"); err != nil && ctx.Err() == nil {
				fatal("list VirtualService %s/%s: %v", *namespace, name, err)
			}
			continue
		}
		expired := false
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				fmt.Fprintf(os.Stderr, "vs-watch: watch from %s ended: %v\n", rv, apierrors.FromObject(ev.Object))
				expired = true
				break
			}
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			rv = u.GetResourceVersion()
			if ev.Type != watch.Bookmark {
				print(string(ev.Type), u)
			}
		}
		w.Stop()
		if expired && ctx.Err() == nil {
			if rv, err = list(ctx, client, sel, "RELIST"); err != nil && ctx.Err() == nil {
				fatal("list VirtualService %s/%s: %v", *namespace, name, err)
			}
		}
	}
}

// list prints the object (if it exists) with EVENT and returns the list's resourceVersion.
func list(ctx context.Context, client dynamic.ResourceInterface, sel, event string) (string, error) {
	l, err := client.List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return "", err
	}
	if len(l.Items) == 0 {
		return "", fmt.Errorf("not found")
	}
	print(event, &l.Items[0])
	return l.GetResourceVersion(), nil
}

func print(event string, obj *unstructured.Unstructured) {
	now := time.Now()
	fmt.Printf("%d.%03d %s %s %s %s\n", now.Unix(), now.Nanosecond()/1e6, event,
		obj.GetResourceVersion(), weights(obj), manager(obj))
}

func weights(obj *unstructured.Unstructured) string {
	routes, _, _ := unstructured.NestedSlice(obj.Object, "spec", "http")
	if len(routes) == 0 {
		return "-"
	}
	var out []string
	for _, r := range routes {
		rm, _ := r.(map[string]interface{})
		dests, _, _ := unstructured.NestedSlice(rm, "route")
		var ws []string
		for _, d := range dests {
			dm, _ := d.(map[string]interface{})
			w, found, _ := unstructured.NestedFieldNoCopy(dm, "weight")
			if !found {
				ws = append(ws, "0")
			} else {
				ws = append(ws, fmt.Sprint(w))
			}
		}
		out = append(out, strings.Join(ws, "/"))
	}
	return strings.Join(out, ",")
}

func manager(obj *unstructured.Unstructured) string {
	var newest string
	var at time.Time
	for _, mf := range obj.GetManagedFields() {
		if mf.Time != nil && !mf.Time.Time.Before(at) {
			at, newest = mf.Time.Time, mf.Manager+"/"+string(mf.Operation)
		}
	}
	if newest == "" {
		return "-"
	}
	return newest
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "vs-watch: error: "+format+"\n", args...)
	os.Exit(1)
}
