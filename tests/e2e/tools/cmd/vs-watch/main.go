// Command vs-watch records every stored version of one Istio VirtualService, for the flap
// measurements of tests/e2e/real.sh: it reads the object, then watches it from that
// resourceVersion, so no version is missed, and prints one line per version:
//
//	UNIX_SECONDS.MILLIS EVENT RESOURCE_VERSION WEIGHTS MANAGER
//
// WEIGHTS are the destination weights of each http route, slash-separated, routes separated by
// commas ("80/20"; "-" when there is no http route); MANAGER is the field manager of the newest
// managedFields entry (who wrote this version). The first line (event INITIAL) is the version the
// watch starts from.
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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
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

	obj, err := client.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		fatal("get VirtualService %s/%s: %v", *namespace, name, err)
	}
	print("INITIAL", obj)
	rv := obj.GetResourceVersion()
	for ctx.Err() == nil {
		w, err := client.Watch(ctx, metav1.ListOptions{
			FieldSelector:   fields.OneTermEqualSelector("metadata.name", name).String(),
			ResourceVersion: rv,
		})
		if err != nil {
			fatal("watch VirtualService %s/%s from %s: %v", *namespace, name, rv, err)
		}
		for ev := range w.ResultChan() {
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				continue // a Status: the watch ends; restart from rv
			}
			print(string(ev.Type), u)
			rv = u.GetResourceVersion()
		}
	}
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
