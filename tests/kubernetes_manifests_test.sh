#!/usr/bin/env bash
# The Kubernetes manifests (deploy/kubernetes), checked without a cluster
# (CTest: kubernetes_manifests, label deploy; deploy/kubernetes/README.md):
#   1. yamllint with deploy/kubernetes/.yamllint;
#   2. `kubectl kustomize deploy/kubernetes` renders (offline);
#   3. the rendered objects: every workload's selector matches its pod
#      labels; every Service, PodDisruptionBudget and the HPA point at
#      existing pods or workloads (Service ports at container ports);
#      every container has CPU and memory requests and limits, readiness
#      and liveness probes on its own ports (the bootstrap Job excepted),
#      runs as a numeric non-root user with a read-only root, no
#      capabilities, no privilege escalation, seccomp RuntimeDefault;
#      every ConfigMap referenced exists; no Secret is defined and every
#      Secret referenced is documented in the README; the gateway's
#      configuration uses only keys of deploy/gateway/medsettle-gateway.yaml
#      (a renamed key fails), redis.mode cluster with the StatefulSet's
#      stable names as seeds, replica_acks ≥ 1, ports, mounted TLS and key
#      paths, a grace period above preStop + drain_timeout_ms; the shipper
#      (one replica, Recreate) on the same seeds and hot window; the Redis
#      nodes with deploy/redis/medsettle-redis.conf unchanged plus
#      cluster-enabled, nodes.conf on the volume, a headless Service, a
#      PodDisruptionBudget of 1, a bootstrap Job naming every node;
#   4. no PEM or private key material under deploy/kubernetes; the Redis
#      scripts parse (sh -n; shellcheck when installed).
# Each failure says what and where; exit 1 if any check failed.
# Needs: yamllint, kubectl (Debian's kubernetes-client, or any kubectl with
# kustomize), python3 with PyYAML (python3-yaml): bash deploy/install-deps.sh.
# usage: bash tests/kubernetes_manifests_test.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
k8s="$here/deploy/kubernetes"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

failures=0
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
need() {  # need PROGRAM PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "FAIL: $1 is not installed (Debian package $2; bash deploy/install-deps.sh)" >&2
  exit 1
}
need yamllint yamllint
need kubectl kubernetes-client
# A python3 with PyYAML: the one on PATH, else Debian's (yamllint's own).
py=""
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import yaml' 2>/dev/null; then
    py="$candidate"
    break
  fi
done
[ -n "$py" ] || {
  echo "FAIL: no python3 with PyYAML (Debian packages python3 python3-yaml; bash deploy/install-deps.sh)" >&2
  exit 1
}

# ------------------------------------------------------------------ yamllint
step "1. yamllint deploy/kubernetes"
if yamllint -s -c "$k8s/.yamllint" "$k8s"; then ok "yamllint"; else fail "yamllint (above: file:line)"; fi

# ----------------------------------------------------------------- kustomize
step "2. kubectl kustomize deploy/kubernetes"
if kubectl kustomize "$k8s" >"$tmp/rendered.yaml" 2>"$tmp/kustomize.err"; then
  # Newer kustomize warns that commonLabels is deprecated (kept for Debian
  # 12's kubectl 1.20: kustomization.yaml); anything else is shown.
  grep -v "'commonLabels' is deprecated" "$tmp/kustomize.err" >&2 || true
  ok "rendered $(grep -c "^kind:" "$tmp/rendered.yaml") objects (kubectl $(kubectl version --client 2>/dev/null | grep -oE "v[0-9]+\.[0-9]+\.[0-9]+" | head -n1))"
else
  cat "$tmp/kustomize.err" >&2
  fail "kubectl kustomize deploy/kubernetes"
  echo "kubernetes_manifests: the manifests do not render; nothing more to check" >&2
  exit 1
fi

# ------------------------------------------------------- the rendered objects
step "3. the rendered objects"
cat >"$tmp/check.py" <<'EOF'
# python3 check.py RENDERED SAMPLE_GATEWAY_YAML REDIS_CONF README
import os, re, sys
import yaml

rendered, sample_path, redis_conf_path, readme_path = sys.argv[1:5]
errors = 0
NAMESPACE = "medsettle"


def fail(where, what):
    global errors
    errors += 1
    print(f"FAIL: {where}: {what}", file=sys.stderr)


mark = 0


def ok(what):
    """Says what was checked if no check failed since the last ok()."""
    global mark
    if errors == mark:
        print(f"ok: {what}")
    mark = errors


def where(o):
    return f"{o.get('kind')}/{o.get('metadata', {}).get('name')}"


objs = [o for o in yaml.safe_load_all(open(rendered)) if o]
by_kind = {}
for o in objs:
    by_kind.setdefault(o["kind"], []).append(o)


def find(kind, name):
    for o in by_kind.get(kind, []):
        if o["metadata"]["name"] == name:
            return o
    return None


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
workloads = [o for k in WORKLOAD_KINDS for o in by_kind.get(k, [])]


def pod_spec(w):
    return w["spec"]["template"]["spec"]


def pod_labels(w):
    return w["spec"]["template"].get("metadata", {}).get("labels", {}) or {}


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def containers(w, init=True):
    spec = pod_spec(w)
    return list(spec.get("containers", [])) + (list(spec.get("initContainers", [])) if init else [])


def port_matches(container_list, port):
    for c in container_list:
        for p in c.get("ports", []) or []:
            if port == p.get("name") or port == p.get("containerPort"):
                return p
    return None


# --- every object in the namespace; no Secret at all ------------------------
for o in objs:
    if o["kind"] != "Namespace" and o["metadata"].get("namespace") != NAMESPACE:
        fail(where(o), f"not in namespace {NAMESPACE}")
if find("Namespace", NAMESPACE) is None:
    fail("kustomization.yaml", f"no Namespace {NAMESPACE}")
for o in by_kind.get("Secret", []):
    fail(where(o), "a Secret is defined in the repository: Secrets are created by the operator (README)")

# --- workloads ---------------------------------------------------------------
secret_refs = {}   # name -> where
configmap_refs = {}
for w in workloads:
    wn = where(w)
    labels = pod_labels(w)
    if w["kind"] != "Job":
        sel = w["spec"].get("selector", {})
        if sel.get("matchExpressions"):
            fail(wn, "selector.matchExpressions: not checked here, use matchLabels")
        if not sel.get("matchLabels"):
            fail(wn, "no selector.matchLabels")
        elif not selects(sel["matchLabels"], labels):
            fail(wn, f"selector {sel['matchLabels']} does not match the pod template's labels {labels}")
    spec = pod_spec(w)
    psc = spec.get("securityContext", {}) or {}
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        fail(wn, "uses the host's network, PIDs or IPC")
    volumes = {v["name"]: v for v in spec.get("volumes", []) or []}
    claim_names = {t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", []) or []}
    for v in volumes.values():
        if "secret" in v:
            secret_refs.setdefault(v["secret"].get("secretName"), f"{wn} volume {v['name']}")
        if "configMap" in v and not v["configMap"].get("optional"):
            configmap_refs.setdefault(v["configMap"].get("name"), f"{wn} volume {v['name']}")
        for src in (v.get("projected", {}) or {}).get("sources", []) or []:
            if "secret" in src:
                secret_refs.setdefault(src["secret"].get("name"), f"{wn} volume {v['name']}")
            if "configMap" in src and not src["configMap"].get("optional"):
                configmap_refs.setdefault(src["configMap"].get("name"), f"{wn} volume {v['name']}")
    for s in spec.get("imagePullSecrets", []) or []:
        secret_refs.setdefault(s.get("name"), f"{wn} imagePullSecrets")
    probed = [c for c in containers(w, init=False)]
    for c in containers(w):
        cn = f"{wn} container {c['name']}"
        is_init = c not in probed
        if not c.get("image"):
            fail(cn, "no image")
        res = c.get("resources", {}) or {}
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in (res.get(kind) or {}):
                    fail(cn, f"no resources.{kind}.{r}")
        if not is_init and w["kind"] != "Job":
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in c:
                    fail(cn, f"no {probe}")
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            p = c.get(probe)
            if not p:
                continue
            for handler in ("httpGet", "tcpSocket", "grpc"):
                if handler in p and port_matches([c], p[handler].get("port")) is None:
                    fail(cn, f"{probe}.{handler}.port {p[handler].get('port')} is not a port of the container")
        csc = c.get("securityContext", {}) or {}

        def eff(key):
            return csc.get(key, psc.get(key))

        if eff("runAsNonRoot") is not True:
            fail(cn, "securityContext.runAsNonRoot is not true (pod or container)")
        uid = eff("runAsUser")
        if not isinstance(uid, int) or uid == 0:
            fail(cn, "no numeric non-zero runAsUser (the kubelet cannot check a named image USER)")
        if csc.get("allowPrivilegeEscalation") is not False:
            fail(cn, "securityContext.allowPrivilegeEscalation is not false")
        if csc.get("readOnlyRootFilesystem") is not True:
            fail(cn, "securityContext.readOnlyRootFilesystem is not true")
        if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
            fail(cn, "securityContext.capabilities.drop does not include ALL")
        if csc.get("privileged"):
            fail(cn, "privileged")
        seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp != "RuntimeDefault":
            fail(cn, f"seccompProfile {seccomp!r}, not RuntimeDefault")
        for m in c.get("volumeMounts", []) or []:
            if m["name"] not in volumes and m["name"] not in claim_names:
                fail(cn, f"volumeMount {m['name']} names no volume")
        for e in c.get("env", []) or []:
            vf = e.get("valueFrom", {}) or {}
            if "secretKeyRef" in vf:
                secret_refs.setdefault(vf["secretKeyRef"].get("name"), f"{cn} env {e['name']}")
            if "configMapKeyRef" in vf and not vf["configMapKeyRef"].get("optional"):
                configmap_refs.setdefault(vf["configMapKeyRef"].get("name"), f"{cn} env {e['name']}")
        for e in c.get("envFrom", []) or []:
            if "secretRef" in e:
                secret_refs.setdefault(e["secretRef"].get("name"), f"{cn} envFrom")
            if "configMapRef" in e and not e["configMapRef"].get("optional"):
                configmap_refs.setdefault(e["configMapRef"].get("name"), f"{cn} envFrom")
    ann = w["spec"]["template"].get("metadata", {}).get("annotations", {}) or {}
    if ann.get("prometheus.io/scrape") == "true":
        port = ann.get("prometheus.io/port", "")
        if not port.isdigit() or port_matches(containers(w, init=False), int(port)) is None:
            fail(wn, f"prometheus.io/port {port!r} is not a container port")
ok(f"{len(workloads)} workloads: selectors, resources, probes, security contexts")

for name, at in sorted(configmap_refs.items()):
    if find("ConfigMap", name) is None:
        fail(at, f"ConfigMap {name} is not in the rendered output")

readme = open(readme_path).read()
for name, at in sorted(secret_refs.items()):
    if find("Secret", name) is not None:
        fail(at, f"Secret {name} is defined in the rendered output")
    if not re.search(r"kubectl[^\n]*create secret[^\n]*\b" + re.escape(name) + r"\b", readme):
        fail(at, f"Secret {name}: no `kubectl … create secret … {name}` in deploy/kubernetes/README.md")
ok(f"Secrets referenced, none defined, each documented: {', '.join(sorted(secret_refs))}")

# --- Services, PDBs, HPA -------------------------------------------------------
for s in by_kind.get("Service", []):
    sel = s["spec"].get("selector") or {}
    matched = [w for w in workloads if w["kind"] != "Job" and selects(sel, pod_labels(w))]
    if not matched:
        fail(where(s), f"selector {sel} matches no workload's pods")
        continue
    for p in s["spec"].get("ports", []):
        target = p.get("targetPort", p.get("port"))
        if not any(port_matches(containers(w, init=False), target) for w in matched):
            fail(where(s), f"port {p.get('name')}: targetPort {target} is no container port of {where(matched[0])}")
for pdb in by_kind.get("PodDisruptionBudget", []):
    sel = (pdb["spec"].get("selector") or {}).get("matchLabels") or {}
    matched = [w for w in workloads if w["kind"] != "Job" and selects(sel, pod_labels(w))]
    if not matched:
        fail(where(pdb), f"selector {sel} selects no workload's pods")
hpas = by_kind.get("HorizontalPodAutoscaler", [])
if len(hpas) != 1:
    fail("kustomization.yaml", f"{len(hpas)} HorizontalPodAutoscalers, expected one (the gateway's)")
gateway = find("Deployment", "medsettle-gateway")
if gateway is None:
    fail("kustomization.yaml", "no Deployment medsettle-gateway")
    sys.exit(1)
for h in hpas:
    if h["apiVersion"] != "autoscaling/v2":
        fail(where(h), f"apiVersion {h['apiVersion']}, expected autoscaling/v2")
    ref = h["spec"].get("scaleTargetRef", {})
    if (ref.get("kind"), ref.get("name")) != ("Deployment", "medsettle-gateway"):
        fail(where(h), f"scaleTargetRef {ref.get('kind')}/{ref.get('name')} is not Deployment/medsettle-gateway")
    if not any(m.get("type") == "Resource" and m.get("resource", {}).get("name") == "cpu"
               for m in h["spec"].get("metrics", [])):
        fail(where(h), "no CPU resource metric")
    if h["spec"].get("minReplicas", 1) < 2:
        fail(where(h), "minReplicas below 2: one node lost would stop settling")
if "replicas" in gateway["spec"]:
    fail(where(gateway), "spec.replicas set: every kubectl apply would reset the HPA's count")
gw_pdb = [p for p in by_kind.get("PodDisruptionBudget", [])
          if selects((p["spec"].get("selector") or {}).get("matchLabels"), pod_labels(gateway))]
if not gw_pdb:
    fail(where(gateway), "no PodDisruptionBudget selects its pods")
ok("Services, PodDisruptionBudgets and the HPA point at existing pods")

# --- the gateway's configuration ---------------------------------------------
def sample_keys(path):
    """Key paths of the sample file, commented-out keys included
    ("  # cert_file: /etc/…"); prose comments are not key lines."""
    keys, stack = set(), []
    plain = re.compile(r"^( *)([a-z_][a-z0-9_]*):(?:\s|$)")
    commented = re.compile(r"^( *)# ([a-z_][a-z0-9_]*): (\S+)(\s+#.*)?$")
    for line in open(path):
        m = plain.match(line) or commented.match(line)
        if not m:
            continue
        indent, key = len(m.group(1)), m.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        keys.add(".".join([k for _, k in stack] + [key]))
        stack.append((indent, key))
    return keys


def config_keys(node, prefix=""):
    out = set()
    for k, v in node.items():
        path = f"{prefix}{k}"
        if path.startswith("rate_limit.overrides.") and path.count(".") == 2:
            path = "rate_limit.overrides.*"  # institution ids: free
        if isinstance(v, dict) and v:
            out |= config_keys(v, path + ".")
        else:
            out.add(path)
    return out


allowed = sample_keys(sample_path)
allowed |= {"rate_limit.overrides.*.requests_per_second", "rate_limit.overrides.*.burst"}
gw_c = pod_spec(gateway)["containers"][0]
args = gw_c.get("args", []) or []
cfg_path = args[args.index("--config") + 1] if "--config" in args else None
cfg, cfg_where = None, where(gateway)
if not cfg_path:
    fail(where(gateway), "no --config FILE in the container's args")
else:
    mount = next((m for m in gw_c.get("volumeMounts", []) if m["mountPath"] == os.path.dirname(cfg_path)), None)
    vol = mount and next((v for v in pod_spec(gateway)["volumes"] if v["name"] == mount["name"]), None)
    cm = vol and "configMap" in vol and find("ConfigMap", vol["configMap"]["name"])
    if not cm or os.path.basename(cfg_path) not in (cm.get("data") or {}):
        fail(where(gateway), f"--config {cfg_path} is not a file of a ConfigMap mounted there")
    else:
        cfg_where = f"{where(cm)} {os.path.basename(cfg_path)}"
        try:
            cfg = yaml.safe_load(cm["data"][os.path.basename(cfg_path)]) or {}
        except yaml.YAMLError as e:
            fail(cfg_where, f"not YAML: {e}")
if cfg is not None:
    for k in sorted(config_keys(cfg) - allowed):
        fail(cfg_where, f"key {k} is not in deploy/gateway/medsettle-gateway.yaml (renamed or misspelt?)")

    def get(path, default=None):
        node = cfg
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    sts = find("StatefulSet", "redis-cluster")
    if get("redis.mode") != "cluster":
        fail(cfg_where, f"redis.mode is {get('redis.mode')!r}, not cluster")
    if not isinstance(get("redis.replica_acks"), int) or get("redis.replica_acks") < 1:
        fail(cfg_where, "redis.replica_acks below 1: a failover could lose an acknowledged settlement")
    if get("insecure_dev"):
        fail(cfg_where, "insecure_dev is on")
    seeds = str(get("redis.address", "")).split(",")
    if sts is None:
        fail("kustomization.yaml", "no StatefulSet redis-cluster")
    else:
        svc, n = sts["spec"]["serviceName"], sts["spec"]["replicas"]
        redis_port = port_matches(pod_spec(sts)["containers"], "redis")
        for seed in seeds:
            m = re.fullmatch(r"redis-cluster-(\d+)\.([a-z0-9-]+)(?:\.[a-z0-9.-]+)?:(\d+)", seed)
            if not m or int(m.group(1)) >= n or m.group(2) != svc or \
                    redis_port is None or int(m.group(3)) != redis_port["containerPort"]:
                fail(cfg_where, f"redis.address seed {seed!r} is not a pod of StatefulSet redis-cluster "
                     f"(redis-cluster-0..{n - 1}.{svc}:<its redis port>)")
    for key, port_name in (("listen", "grpc"), ("metrics.listen", "metrics")):
        value = str(get(key, ""))
        p = port_matches([gw_c], port_name)
        if not value.startswith("0.0.0.0:") or p is None or value.rsplit(":", 1)[1] != str(p["containerPort"]):
            fail(cfg_where, f"{key} {value!r} is not 0.0.0.0:<the container's {port_name} port>")
    ann = gateway["spec"]["template"]["metadata"].get("annotations", {})
    if ann.get("prometheus.io/port") != str(get("metrics.listen", "")).rsplit(":", 1)[-1]:
        fail(where(gateway), "prometheus.io/port is not metrics.listen's port")
    mounts = {m["mountPath"]: m["name"] for m in gw_c.get("volumeMounts", [])}
    vols = {v["name"]: v for v in pod_spec(gateway)["volumes"]}
    for key in ("tls.cert_file", "tls.key_file", "tls.client_ca_file", "tls.crl_dir",
                "ec_token.issuer_keys_dir", "files.key_file"):
        value = get(key)
        if not value:
            fail(cfg_where, f"{key} is not set")
            continue
        folder = value if key.endswith("_dir") else os.path.dirname(value)
        vol = vols.get(mounts.get(folder, ""))
        if not vol or "secret" not in vol:
            fail(cfg_where, f"{key} {value}: its folder is not a mounted Secret")
    drain_s = get("drain_timeout_ms", 10000) / 1000
    pre = ((gw_c.get("lifecycle") or {}).get("preStop") or {})
    pre_s = 0
    if "exec" in pre and pre["exec"]["command"][:1] == ["sleep"]:
        pre_s = float(pre["exec"]["command"][1])
    elif "sleep" in pre:
        pre_s = float(pre["sleep"]["seconds"])
    else:
        fail(where(gateway), "no preStop pause (endpoints are withdrawn late: calls would be refused)")
    grace = pod_spec(gateway).get("terminationGracePeriodSeconds", 30)
    if grace <= pre_s + drain_s:
        fail(where(gateway), f"terminationGracePeriodSeconds {grace} does not exceed preStop {pre_s:g} s "
             f"+ drain_timeout_ms {drain_s:g} s")
    ok(f"gateway configuration: {len(config_keys(cfg))} keys, all in the sample; cluster seeds, ports, mounts, grace")

    # --- the shipper -----------------------------------------------------------
    shippers = [w for w in by_kind.get("Deployment", []) for c in pod_spec(w)["containers"]
                if "medsettle-ledger" in " ".join(c.get("command", []) or []) and (c.get("args") or [""])[0] == "ship"]
    if len(shippers) != 1:
        fail("kustomization.yaml", f"{len(shippers)} Deployments run medsettle-ledger ship, expected one")
    for sh in shippers:
        c = next(c for c in pod_spec(sh)["containers"] if (c.get("args") or [""])[0] == "ship")
        a = c["args"]

        def flag(name):
            return a[a.index(name) + 1] if name in a and a.index(name) + 1 < len(a) else None

        if sh["spec"].get("replicas") != 1:
            fail(where(sh), "replicas is not 1 (one shipper per Redis: LEDGER_SHIPPER_RUNNING)")
        if (sh["spec"].get("strategy") or {}).get("type") != "Recreate":
            fail(where(sh), "strategy is not Recreate (a rollout would start a second shipper)")
        if flag("--redis-mode") != "cluster":
            fail(where(sh), "no --redis-mode cluster")
        if flag("--redis") != get("redis.address"):
            fail(where(sh), f"--redis {flag('--redis')!r} differs from the gateway's redis.address")
        if str(flag("--hot-window-hours") or 168) != str(get("ledger.hot_window_hours", 168)):
            fail(where(sh), "--hot-window-hours differs from the gateway's ledger.hot_window_hours")
        ml = flag("--metrics-listen") or ""
        p = port_matches([c], "metrics")
        if p is None or not ml.startswith("0.0.0.0:") or ml.rsplit(":", 1)[1] != str(p["containerPort"]):
            fail(where(sh), f"--metrics-listen {ml!r} is not 0.0.0.0:<the metrics port>")
        ledger_env = [e for e in c.get("env", []) if e["name"] == "MEDSETTLE_LEDGER"]
        if not flag("--ledger") and not (ledger_env and "secretKeyRef" in (ledger_env[0].get("valueFrom") or {})):
            fail(where(sh), "the ledger's conninfo does not come from a Secret (MEDSETTLE_LEDGER)")
    if shippers:
        ok("shipper: one replica, Recreate, the gateways' seeds and hot window")

# --- Redis ---------------------------------------------------------------------
sts = find("StatefulSet", "redis-cluster")
if sts is not None:
    n = sts["spec"]["replicas"]
    if n != 6:
        fail(where(sts), f"replicas {n}, expected 6 (3 primaries + 3 replicas)")
    svc = find("Service", sts["spec"]["serviceName"])
    if svc is None or svc["spec"].get("clusterIP") != "None":
        fail(where(sts), f"serviceName {sts['spec']['serviceName']} is not a headless Service")
    elif not svc["spec"].get("publishNotReadyAddresses"):
        fail(where(svc), "publishNotReadyAddresses is not true (nodes are not ready before the cluster exists)")
    if sts["spec"].get("podManagementPolicy") != "Parallel":
        fail(where(sts), "podManagementPolicy is not Parallel (OrderedReady waits for a ready redis-cluster-0 for ever)")
    c = pod_spec(sts)["containers"][0]
    claims = {t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])}
    data_mounts = [m["mountPath"] for m in c.get("volumeMounts", []) if m["name"] in claims]
    if not data_mounts:
        fail(where(sts), "no volumeClaimTemplate mounted")
    cm_vol = next((v for v in pod_spec(sts)["volumes"] if "configMap" in v), None)
    cm = cm_vol and find("ConfigMap", cm_vol["configMap"]["name"])
    cm_mount = cm_vol and next((m["mountPath"] for m in c["volumeMounts"] if m["name"] == cm_vol["name"]), None)
    if not cm:
        fail(where(sts), "no Redis configuration ConfigMap")
    else:
        data = cm.get("data") or {}
        if data.get("medsettle-redis.conf") != open(redis_conf_path).read():
            fail(where(cm), "medsettle-redis.conf differs from deploy/redis/medsettle-redis.conf "
                 "(cp deploy/redis/medsettle-redis.conf deploy/kubernetes/redis/)")
        conf = data.get("cluster.conf", "")
        directives = {}
        for line in conf.splitlines():
            parts = line.split(None, 1)
            if parts and not parts[0].startswith("#"):
                directives[parts[0].lower()] = parts[1].strip() if len(parts) > 1 else ""
        if directives.get("include") != f"{cm_mount}/medsettle-redis.conf":
            fail(f"{where(cm)} cluster.conf", f"does not include {cm_mount}/medsettle-redis.conf first")
        # medsettle-redis.conf's durability settings must not be overridden after the include.
        for key in ("appendonly", "appendfsync", "maxmemory-policy", "save", "hash-max-listpack-value"):
            if key in directives:
                fail(f"{where(cm)} cluster.conf", f"overrides {key} of medsettle-redis.conf")
        if directives.get("cluster-enabled") != "yes":
            fail(f"{where(cm)} cluster.conf", "no cluster-enabled yes")
        ccf, d = directives.get("cluster-config-file", ""), directives.get("dir", "")
        path = ccf if ccf.startswith("/") else f"{d}/{ccf}"
        if not any(path.startswith(m.rstrip("/") + "/") for m in data_mounts) or d not in data_mounts:
            fail(f"{where(cm)} cluster.conf", f"dir {d!r} / cluster-config-file {ccf!r} not on the persistent volume {data_mounts}")
    pdbs = [p for p in by_kind.get("PodDisruptionBudget", [])
            if selects((p["spec"].get("selector") or {}).get("matchLabels"), pod_labels(sts))]
    if len(pdbs) != 1 or pdbs[0]["spec"].get("maxUnavailable") != 1:
        fail(where(sts), "needs one PodDisruptionBudget with maxUnavailable 1")
    jobs = [j for j in by_kind.get("Job", []) if any("bootstrap" in " ".join(x.get("command", []) or [])
                                                     for x in pod_spec(j)["containers"])]
    if len(jobs) != 1:
        fail("kustomization.yaml", "no Redis Cluster bootstrap Job")
    else:
        j = jobs[0]
        jc = pod_spec(j)["containers"][0]
        want = [f"redis-cluster-{i}.{sts['spec']['serviceName']}:6379" for i in range(n)]
        if jc.get("args") != want:
            fail(where(j), f"args {jc.get('args')} are not every node of the StatefulSet {want}")
        env = {e["name"]: e.get("value") for e in jc.get("env", [])}
        if env.get("CLUSTER_REPLICAS") != "1":
            fail(where(j), "CLUSTER_REPLICAS is not 1")
        script = (cm.get("data") or {}).get("bootstrap.sh", "") if cm else ""
        for needle in ("--cluster create", "--cluster-replicas", "--cluster-yes", "cluster_known_nodes"):
            if needle not in script:
                fail(f"{where(cm) if cm else 'redis'} bootstrap.sh", f"no {needle}")
    ok(f"Redis Cluster: {n} nodes, headless Service, volumes, configuration, PDB, bootstrap Job")

sys.exit(1 if errors else 0)
EOF
if "$py" "$tmp/check.py" "$tmp/rendered.yaml" "$here/deploy/gateway/medsettle-gateway.yaml" \
    "$here/deploy/redis/medsettle-redis.conf" "$k8s/README.md"; then
  ok "rendered objects"
else
  fail "rendered objects (above)"
fi

# ------------------------------------------------- no key material; scripts
step "4. no secret material; the Redis scripts"
if grep -rEn -e '-----BEGIN' -e 'PRIVATE KEY' "$k8s"; then
  fail "PEM or private key material under deploy/kubernetes (above): Secrets are created by the operator"
else
  ok "no PEM or private key under deploy/kubernetes"
fi
for script in "$k8s"/redis/*.sh; do
  sh -n "$script" || fail "${script#"$here"/}: sh -n"
  if command -v shellcheck >/dev/null 2>&1; then
    shellcheck -s sh "$script" || fail "${script#"$here"/}: shellcheck"
  fi
done
ok "redis/*.sh parse"

echo
if [ "$failures" -ne 0 ]; then
  echo "kubernetes_manifests: $failures check(s) failed" >&2
  exit 1
fi
echo "kubernetes_manifests: all checks passed"
