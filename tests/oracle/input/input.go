// Package input reads YAML the way `rollout-guard lint` does: files, folders (recursively,
// *.yaml / *.yml, sorted) or "-" for stdin; multi-document streams split at "---" lines, a
// document counted only when it has content (so document numbers agree with the lint's);
// `kind: List` expanded; documents without a namespace are in "default".
package input

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Doc is one object of the input.
type Doc struct {
	File      string
	Index     int // 1-based document number, as rollout-guard lint counts
	Raw       []byte
	Object    map[string]any // nil when the document is not valid YAML or not a mapping
	Err       error
	Group     string
	Version   string
	Kind      string
	Namespace string
	Name      string
}

// Case is one unit of comparison: a file given on the command line, or all files under a
// folder given on the command line.
type Case struct {
	Name string
	Docs []Doc
}

// ReadCases treats each argument as one case.
func ReadCases(args []string) ([]Case, error) {
	var out []Case
	for _, a := range args {
		docs, err := Read([]string{a})
		if err != nil {
			return nil, err
		}
		out = append(out, Case{Name: a, Docs: docs})
	}
	return out, nil
}

// Read reads all arguments as one input set.
func Read(args []string) ([]Doc, error) {
	var docs []Doc
	for _, a := range args {
		if a == "-" {
			b, err := io.ReadAll(os.Stdin)
			if err != nil {
				return nil, err
			}
			docs = append(docs, Split("-", b)...)
			continue
		}
		st, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		var files []string
		if st.IsDir() {
			err := filepath.Walk(a, func(p string, info os.FileInfo, err error) error {
				if err != nil {
					return err
				}
				if !info.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
					files = append(files, p)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
			sort.Strings(files)
		} else {
			files = []string{a}
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			docs = append(docs, Split(f, b)...)
		}
	}
	return docs, nil
}

// Split cuts a stream into documents.
func Split(file string, b []byte) []Doc {
	var chunks []string
	var cur strings.Builder
	flush := func() {
		c := cur.String()
		cur.Reset()
		for _, l := range strings.Split(c, "\n") {
			t := strings.TrimSpace(l)
			if t != "" && !strings.HasPrefix(strings.TrimLeft(l, " \t"), "#") && t != "..." {
				chunks = append(chunks, c)
				return
			}
		}
	}
	for _, line := range strings.SplitAfter(string(b), "\n") {
		bare := strings.TrimRight(line, " \t\r\n")
		if bare == "---" || strings.HasPrefix(bare, "--- ") || strings.HasPrefix(bare, "---\t") {
			flush()
			continue
		}
		cur.WriteString(line)
	}
	flush()
	var docs []Doc
	for i, c := range chunks {
		d := Doc{File: file, Index: i + 1, Raw: []byte(c)}
		var v any
		if err := yaml.Unmarshal([]byte(c), &v); err != nil {
			d.Err = err
			docs = append(docs, d)
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			d.Err = fmt.Errorf("document is not a mapping")
			docs = append(docs, d)
			continue
		}
		if k, _ := m["kind"].(string); k == "List" {
			items, _ := m["items"].([]any)
			for _, it := range items {
				im, ok := it.(map[string]any)
				if !ok {
					continue
				}
				raw, _ := yaml.Marshal(im)
				docs = append(docs, fill(Doc{File: file, Index: i + 1, Raw: raw, Object: im}))
			}
			continue
		}
		d.Object = m
		docs = append(docs, fill(d))
	}
	return docs
}

func fill(d Doc) Doc {
	av, _ := d.Object["apiVersion"].(string)
	if i := strings.Index(av, "/"); i >= 0 {
		d.Group, d.Version = av[:i], av[i+1:]
	} else {
		d.Version = av
	}
	d.Kind, _ = d.Object["kind"].(string)
	md, _ := d.Object["metadata"].(map[string]any)
	d.Name, _ = md["name"].(string)
	d.Namespace, _ = md["namespace"].(string)
	if d.Namespace == "" {
		d.Namespace = "default"
	}
	return d
}

// Ours reports whether rollout-guard reads this kind.
func (d Doc) Ours() bool {
	switch {
	case d.Group == "argoproj.io" && d.Kind == "Rollout":
		return true
	case d.Group == "networking.istio.io" && (d.Kind == "VirtualService" || d.Kind == "DestinationRule"):
		return true
	case d.Group == "" && d.Version == "v1" && d.Kind == "Service":
		return true
	}
	return false
}

// Latest keeps, per kind/namespace/name, the last document (a later document replaces an
// earlier one, as in rollout-guard lint), in first-seen order. Unparseable documents are dropped.
func Latest(docs []Doc) []Doc {
	idx := map[string]int{}
	var out []Doc
	for _, d := range docs {
		if d.Object == nil || !d.Ours() {
			continue
		}
		k := d.Kind + "/" + d.Namespace + "/" + d.Name
		if i, ok := idx[k]; ok {
			out[i] = d
			continue
		}
		idx[k] = len(out)
		out = append(out, d)
	}
	return out
}
