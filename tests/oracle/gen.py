#!/usr/bin/env python3
"""Seeded generator of oracle cases: each case is one multi-document YAML file holding a Rollout
and the Services, VirtualServices and DestinationRules it references (plus, at times, objects it
does not reference). Reproducible: the same --seed and --count give byte-identical files.

Usage: gen.py --seed 1 --count 5000 --out DIR

Each case starts from a valid setup and applies a few perturbations drawn from the dimensions
the issue lists (host/subset level; http/tls/tcp routes with and without names; routes/tlsRoutes/
tcpRoutes present or omitted; wildcard and short/FQDN hosts; name.namespace references; several
VirtualServices; managed header/mirror routes; ping-pong; experiment steps; additional subsets).
The perturbations applied are written in a comment at the top of the file."""
import argparse
import json
import os
import random
import sys


def dump(obj, indent=0):
    """A small deterministic YAML emitter (block style, JSON-quoted scalars)."""
    pad = "  " * indent
    out = []
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{k}:\n{dump(v, indent + 1)}")
            else:
                out.append(f"{pad}{k}: {scalar(v)}\n")
        return "".join(out)
    if isinstance(obj, list):
        if not obj:
            return pad + "[]\n"
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                inner = dump(v, indent + 1)
                out.append(f"{pad}- {inner.lstrip()}")
            else:
                out.append(f"{pad}- {scalar(v)}\n")
        return "".join(out)
    return pad + scalar(obj) + "\n"


def scalar(v):
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, list):
        return "[]"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    return json.dumps(v)


class Case:
    def __init__(self, rnd, idx):
        self.r = rnd
        self.idx = idx
        self.notes = []

    def chance(self, p):
        return self.r.random() < p

    def pick(self, xs):
        return xs[self.r.randrange(len(xs))]

    def note(self, s):
        self.notes.append(s)

    def build(self):
        r = self
        ns = r.pick(["default", "default", "apps"])
        app = "app%d" % (self.idx % 7)
        mode = r.pick(["host", "host", "subset"])
        pingpong = mode == "host" and r.chance(0.15)
        canary, stable = f"{app}-canary", f"{app}-stable"
        ping, pong = f"{app}-ping", f"{app}-pong"
        svc_single = f"{app}-svc"
        labels = {"app": app}
        docs = []

        # Roles as the destinations name them.
        if mode == "subset":
            can_sub, st_sub = r.pick([("canary", "stable"), ("v2", "v1")])
        # ---- Services
        def service(name, sel):
            return {"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": name, **({"namespace": ns} if ns != "default" else {})},
                    "spec": {"selector": sel, "ports": [{"port": 80, "targetPort": 8080, "name": "http"}]}}
        svcs = []
        if mode == "host":
            names = [ping, pong] if pingpong else [canary, stable]
            for n in names:
                sel = dict(labels)
                if r.chance(0.04):
                    sel = {"app": app + "-other"}
                    r.note(f"service {n} selector mismatch")
                svcs.append(service(n, sel))
        else:
            svcs.append(service(svc_single, dict(labels)))
        if r.chance(0.05) and svcs:
            drop = svcs.pop(r.r.randrange(len(svcs))) if hasattr(r, "r") else None
            r.note(f"service {drop['metadata']['name']} missing")

        # ---- VirtualServices
        nvs = r.pick([1, 1, 1, 2, 3])
        multi = nvs > 1 or r.chance(0.2)
        vs_refs = []
        vs_docs = []
        exp_svc = f"{app}-exp-svc"
        extra_subset = f"{app}-extra"
        use_additional = mode == "subset" and r.chance(0.15)
        experiment = r.chance(0.1)
        managed = []
        header_step = mode in ("host", "subset") and r.chance(0.15)
        mirror_step = r.chance(0.1)
        if header_step:
            managed.append("hdr-route")
        if mirror_step:
            managed.append("mirror-route")
        if managed and r.chance(0.1):
            managed.append("hdr-route" if "hdr-route" in managed else "mirror-route")
            r.note("managedRoutes duplicate name")

        def host_of(svc, vs_ns):
            form = r.pick(["short"] * 5 + ["fqdn"] * 3 + ["ns", "nssvc", "other"])
            if form == "short":
                return svc
            if form == "fqdn":
                return f"{svc}.{ns}.svc.cluster.local"
            if form == "ns":
                return f"{svc}.{ns}"
            if form == "nssvc":
                return f"{svc}.{ns}.svc"
            return f"{svc}.example.com"

        def dests(vs_ns, weighted=True):
            ds = []
            if mode == "host":
                cn, sn = (ping, pong) if pingpong else (canary, stable)
                ds.append({"destination": {"host": host_of(sn, vs_ns)}, "weight": 100})
                ds.append({"destination": {"host": host_of(cn, vs_ns)}, "weight": 0})
            else:
                h = host_of(svc_single, vs_ns)
                ds.append({"destination": {"host": h, "subset": st_sub}, "weight": 100})
                ds.append({"destination": {"host": h, "subset": can_sub}, "weight": 0})
            if r.chance(0.05):
                ds.pop(r.pick([0, 1]))
                r.note("route lacks canary or stable destination")
            if r.chance(0.04):
                ds.append({"destination": {"host": f"{app}-foreign"}, "weight": r.pick([0, 10])})
                r.note("foreign destination")
            if use_additional and r.chance(0.7):
                ds.append({"destination": {"host": f"{app}-extra-svc", "subset": extra_subset}, "weight": 0})
            if r.chance(0.03):
                for d in ds:
                    d["weight"] = 0
                r.note("all weights 0")
            if r.chance(0.03):
                ds[0]["weight"] = -5
                r.note("negative weight")
            if r.chance(0.05):
                for d in ds:
                    d["destination"]["port"] = {"number": 80}
            return ds

        for v in range(nvs):
            vname = f"{app}-vsvc{v + 1}" if nvs > 1 else f"{app}-vsvc"
            vs_ns = ns
            if r.chance(0.1):
                vs_ns = "mesh-" + ns
                r.note(f"VS {vname} in namespace {vs_ns}")
            # reference form
            if vs_ns != ns or r.chance(0.15):
                ref = r.pick([f"{vname}.{vs_ns}", f"{vname}.{vs_ns}", f"{vname}.{vs_ns}.svc.cluster.local",
                              f"{vname}.{vs_ns}.svc"])
                r.note(f"reference {ref}")
            else:
                ref = vname
            # hosts
            hosts_kind = r.pick(["short"] * 4 + ["fqdn"] * 2 + ["local", "wild", "star", "dup", "many"])
            if hosts_kind == "short":
                hosts = [vname]
            elif hosts_kind == "fqdn":
                hosts = [f"{vname}.{vs_ns}.svc.cluster.local"]
            elif hosts_kind == "local":
                hosts = [f"{vname}.local"]
            elif hosts_kind == "wild":
                hosts = ["*.example.com"]
            elif hosts_kind == "star":
                hosts = ["*"]
                r.note("hosts *")
            elif hosts_kind == "dup":
                hosts = [vname, vname]
                r.note("duplicate hosts")
            else:
                hosts = [f"{vname}.example.com", "*.example.com"]
                r.note("overlapping hosts")
            gateways = r.pick([None, None, None, ["mesh"], [f"{app}-gateway"], ["mesh", f"{app}-gateway"]])
            if hosts_kind == "star" and gateways and "mesh" not in gateways:
                r.note("hosts * on a gateway-only VS")
            spec = {}
            if gateways:
                spec["gateways"] = gateways
            spec["hosts"] = hosts
            kinds = r.pick([["http"]] * 5 + [["tls"], ["tcp"], ["http", "tls"], ["http", "tcp"], ["http", "tls", "tcp"], []])
            if not kinds:
                r.note(f"VS {vname} has no routes")
            entry = {"name": ref}
            # http
            if "http" in kinds:
                n = r.pick([1, 1, 1, 2, 3])
                http = []
                names_used = []
                for i in range(n):
                    rt = {}
                    named = r.chance(0.8)
                    if named:
                        nm = r.pick(["primary", "secondary", "tertiary"][: i + 1]) if r.chance(0.05) else ["primary", "secondary", "tertiary"][i]
                        if nm in names_used:
                            r.note("duplicate http route name")
                        names_used.append(nm)
                        rt["name"] = nm
                    else:
                        r.note(f"unnamed http route #{i}")
                    if i < n - 1 or r.chance(0.2):
                        rt["match"] = [{"uri": {"prefix": f"/p{i}"}}]
                    rt["route"] = dests(vs_ns)
                    http.append(rt)
                spec["http"] = http
                lst = r.pick(["all", "first", "omit", "omit", "missing"])
                if lst == "all" and names_used:
                    entry["routes"] = list(dict.fromkeys(names_used))
                elif lst == "first" and names_used:
                    entry["routes"] = [names_used[0]]
                elif lst == "missing":
                    entry["routes"] = ["nonexistent"]
                    r.note("routes names a missing route")
                else:
                    r.note("routes omitted")
            elif r.chance(0.2):
                entry["routes"] = ["primary"]
                r.note("routes listed, VS has no http")
            # tls
            if "tls" in kinds:
                n = r.pick([1, 1, 2])
                tls = []
                for i in range(n):
                    sni_kind = r.pick(["hosts"] * 4 + ["sub", "outside", "badsyntax", "dup", "none"])
                    base = hosts[0] if hosts[0] not in ("*",) else f"{vname}.example.com"
                    if base.startswith("*."):
                        base = "api" + base[1:]
                    if sni_kind == "hosts":
                        sni = [base]
                    elif sni_kind == "sub":
                        sni = [f"a.{base}"]
                        r.note("sni subdomain of host")
                    elif sni_kind == "outside":
                        sni = ["reviews.bookinfo.com"]
                        r.note("sni outside hosts")
                    elif sni_kind == "badsyntax":
                        sni = ["foo.*.com"]
                        r.note("sni bad syntax")
                    elif sni_kind == "dup":
                        sni = [base, base]
                        r.note("sni duplicate")
                    else:
                        sni = []
                        r.note("tls match without sniHosts")
                    m = {"port": 3000 + i}
                    if sni or r.chance(0.5):
                        m["sniHosts"] = sni
                    tls.append({"match": [m], "route": dests(vs_ns)})
                spec["tls"] = tls
                lst = r.pick(["match", "omit", "omit", "wrongport", "dupsni"])
                if lst == "match":
                    entry["tlsRoutes"] = [{"port": t["match"][0]["port"], "sniHosts": list(t["match"][0].get("sniHosts", []))} for t in tls]
                elif lst == "wrongport":
                    entry["tlsRoutes"] = [{"port": 4443, "sniHosts": list(tls[0]["match"][0].get("sniHosts", []))}]
                    r.note("tlsRoutes port mismatch")
                elif lst == "dupsni":
                    s0 = list(tls[0]["match"][0].get("sniHosts", [])) or [hosts[0]]
                    entry["tlsRoutes"] = [{"port": tls[0]["match"][0]["port"], "sniHosts": s0 + s0[:1]}]
                    r.note("tlsRoutes sniHosts duplicate")
                else:
                    r.note("tlsRoutes omitted")
            # tcp
            if "tcp" in kinds:
                n = r.pick([1, 1, 2])
                tcp = []
                for i in range(n):
                    rt = {"route": dests(vs_ns)}
                    if r.chance(0.85):
                        rt["match"] = [{"port": 5000 + i}]
                    tcp.append(rt)
                spec["tcp"] = tcp
                lst = r.pick(["match", "omit", "omit", "wrongport"])
                if lst == "match":
                    entry["tcpRoutes"] = [{"port": t["match"][0]["port"]} for t in tcp if "match" in t]
                elif lst == "wrongport":
                    entry["tcpRoutes"] = [{"port": 6000}]
                    r.note("tcpRoutes port mismatch")
                else:
                    r.note("tcpRoutes omitted")
            md = {"name": vname}
            if vs_ns != "default":
                md["namespace"] = vs_ns
            vs_docs.append({"apiVersion": r.pick(["networking.istio.io/v1alpha3", "networking.istio.io/v1beta1", "networking.istio.io/v1"]),
                            "kind": "VirtualService", "metadata": md, "spec": spec})
            vs_refs.append(entry)
        if r.chance(0.04) and vs_docs:
            gone = vs_docs.pop()
            r.note(f"VS {gone['metadata']['name']} missing")

        # ---- DestinationRules
        dr_docs = []
        dr_name = f"{app}-destrule"
        if mode == "subset":
            subsets = [{"name": can_sub, "labels": dict(labels)}, {"name": st_sub, "labels": dict(labels)}]
            if r.chance(0.05):
                subsets.pop(r.pick([0, 1]))
                r.note("DR lacks canary or stable subset")
            if r.chance(0.03):
                subsets.append({"name": subsets[0]["name"], "labels": dict(labels)})
                r.note("DR duplicate subset name")
            if use_additional and r.chance(0.2):
                subsets.append({"name": extra_subset, "labels": {"app": app + "-extra"}})
                r.note("additional subset in the canary/stable DR")
            md = {"name": dr_name}
            if ns != "default":
                md["namespace"] = ns
            dr_docs.append({"apiVersion": "networking.istio.io/v1alpha3", "kind": "DestinationRule", "metadata": md,
                            "spec": {"host": svc_single, "subsets": subsets}})
            if use_additional:
                md2 = {"name": f"{app}-extra-destrule"}
                if ns != "default":
                    md2["namespace"] = ns
                dr_docs.append({"apiVersion": "networking.istio.io/v1alpha3", "kind": "DestinationRule", "metadata": md2,
                                "spec": {"host": f"{app}-extra-svc", "subsets": [{"name": extra_subset, "labels": {"app": app + "-extra"}}]}})
                r.note("additionalSubsetNames")
            if r.chance(0.04):
                dr_docs.pop(0)
                r.note("DR missing")

        # ---- Rollout
        istio = {}
        if multi:
            istio["virtualServices"] = vs_refs
        else:
            istio["virtualService"] = vs_refs[0]
        if r.chance(0.02):
            istio["virtualServices"] = vs_refs
            istio["virtualService"] = vs_refs[0]
            r.note("both virtualService and virtualServices")
        if mode == "subset":
            drs = {"name": dr_name, "canarySubsetName": can_sub, "stableSubsetName": st_sub}
            if use_additional:
                drs["additionalSubsetNames"] = [extra_subset]
            istio["destinationRule"] = drs
        canary_spec = {}
        if mode == "host":
            if pingpong:
                pp = {"pingService": ping, "pongService": pong}
                if r.chance(0.1):
                    pp[r.pick(["pingService", "pongService"])] = ""
                    r.note("empty ping/pong service name")
                canary_spec["pingPong"] = pp
            else:
                canary_spec["canaryService"] = canary
                canary_spec["stableService"] = stable
                if r.chance(0.03):
                    canary_spec["canaryService"] = stable
                    r.note("canaryService == stableService")
                if r.chance(0.03):
                    del canary_spec[r.pick(["canaryService", "stableService"])]
                    r.note("one of canary/stable Service unset")
        elif r.chance(0.1):
            canary_spec["canaryService"] = canary
            canary_spec["stableService"] = stable
            for n in (canary, stable):
                svcs.append(service(n, dict(labels)))
            r.note("subset level with canary/stable Services too")
        tr = {"istio": istio}
        if managed:
            tr["managedRoutes"] = [{"name": m} for m in managed]
        canary_spec["trafficRouting"] = tr
        steps = [{"setWeight": r.pick([5, 10, 20, 50])}]
        if r.chance(0.03):
            steps[0]["setWeight"] = r.pick([-1, 101])
            r.note("setWeight out of range")
        steps.append({"pause": {"duration": "10s"}})
        if header_step:
            hv = {"exact": "x"}
            if r.chance(0.05):
                hv = {"exact": "x", "regex": "y.*"}
                r.note("header match with two kinds")
            name = "hdr-route" if not r.chance(0.05) else "undeclared-route"
            if name != "hdr-route":
                r.note("setHeaderRoute names a route not in managedRoutes")
            steps.append({"setHeaderRoute": {"name": name, "match": [{"headerName": "x-canary", "headerValue": hv}]}})
        if mirror_step:
            steps.append({"setMirrorRoute": {"name": "mirror-route", "percentage": r.pick([50, 100, 150]),
                                             "match": [{"method": {"exact": "GET"}}]}})
        if experiment:
            steps.append({"experiment": {"duration": "1m", "templates": [
                {"name": "exp", "specRef": "canary", "weight": 10, "service": {"name": exp_svc}}]}})
            r.note("experiment step")
        steps.append({"setWeight": 100})
        canary_spec["steps"] = steps
        if r.chance(0.02):
            canary_spec["maxSurge"] = 0
            canary_spec["maxUnavailable"] = 0
            r.note("maxSurge and maxUnavailable 0")
        if r.chance(0.03):
            canary_spec["canaryservice"] = canary
            r.note("unknown field canaryservice")
        ro_md = {"name": app}
        if ns != "default":
            ro_md["namespace"] = ns
        rollout = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": ro_md,
                   "spec": {"replicas": 2, "selector": {"matchLabels": dict(labels)},
                            "template": {"metadata": {"labels": dict(labels)},
                                         "spec": {"containers": [{"name": app, "image": "nginx:1.27"}]}},
                            "strategy": {"canary": canary_spec}}}
        if experiment and r.chance(0.5):
            rollout["status"] = {"currentStepIndex": len(steps) - 2,
                                 "canary": {"weights": {"canary": {"weight": 10, "serviceName": canary_spec.get("canaryService", ""), "podTemplateHash": "c"},
                                                        "stable": {"weight": 80, "serviceName": canary_spec.get("stableService", ""), "podTemplateHash": "s"},
                                                        "additional": [{"weight": 10, "serviceName": exp_svc, "podTemplateHash": "e"}]}}}
            r.note("status with experiment weights")
        docs = [rollout] + svcs + vs_docs + dr_docs
        return docs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for i in range(1, a.count + 1):
        rnd = random.Random(f"{a.seed}/{i}")
        c = Case(rnd, i)
        c.r = rnd
        docs = c.build()
        path = os.path.join(a.out, "case-%05d.yaml" % i)
        with open(path, "w") as f:
            f.write(f"# oracle case {i} of seed {a.seed}\n")
            for n in c.notes:
                f.write(f"# - {n}\n")
            for d in docs:
                f.write("---\n")
                f.write(dump(d))
    print(f"gen: {a.count} cases from seed {a.seed} in {a.out}")


if __name__ == "__main__":
    sys.exit(main())
