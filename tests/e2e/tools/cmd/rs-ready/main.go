// Command rs-ready stands in for the kubelets and the ReplicaSet controller of a real cluster,
// which the end-to-end control plane does not have: it watches every ReplicaSet and, through the
// status subresource, reports each one's spec.replicas as created, ready and available at its
// current generation. So the Argo Rollouts controller sees its canary and stable ReplicaSets
// become available, as it would once their pods ran, and walks its steps for real.
//
//	rs-ready --kubeconfig FILE
//
// It runs until killed and logs one line per status it writes.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
)

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the API server")
	flag.Parse()
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("rs-ready: cannot load kubeconfig %q: %v", *kubeconfig, err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	factory := informers.NewSharedInformerFactory(client, 30*time.Second)
	rsInformer := factory.Apps().V1().ReplicaSets()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	enqueue := func(obj interface{}) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(key)
		}
	}
	if _, err := rsInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj interface{}) { enqueue(obj) },
	}); err != nil {
		log.Fatalf("rs-ready: %v", err)
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), rsInformer.Informer().HasSynced) {
		log.Fatal("rs-ready: the ReplicaSet informer did not sync")
	}
	log.Print("rs-ready: watching ReplicaSets")
	go func() { <-ctx.Done(); queue.ShutDown() }()
	for {
		key, quit := queue.Get()
		if quit {
			return
		}
		if err := sync(ctx, client, rsInformer.Lister(), key); err != nil {
			log.Printf("rs-ready: %s: %v (retrying)", key, err)
			queue.AddRateLimited(key)
		} else {
			queue.Forget(key)
		}
		queue.Done(key)
	}
}

func sync(ctx context.Context, client kubernetes.Interface, lister appslisters.ReplicaSetLister, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	rs, err := lister.ReplicaSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	want := int32(1)
	if rs.Spec.Replicas != nil {
		want = *rs.Spec.Replicas
	}
	st := rs.Status
	if st.Replicas == want && st.ReadyReplicas == want && st.AvailableReplicas == want &&
		st.FullyLabeledReplicas == want && st.ObservedGeneration == rs.Generation {
		return nil
	}
	upd := rs.DeepCopy()
	upd.Status.Replicas = want
	upd.Status.ReadyReplicas = want
	upd.Status.AvailableReplicas = want
	upd.Status.FullyLabeledReplicas = want
	upd.Status.ObservedGeneration = rs.Generation
	if _, err := client.AppsV1().ReplicaSets(ns).UpdateStatus(ctx, upd, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return nil // a newer version is on its way through the informer
		}
		return err
	}
	log.Printf("rs-ready: %s generation %d: %d replicas ready and available", key, rs.Generation, want)
	return nil
}
