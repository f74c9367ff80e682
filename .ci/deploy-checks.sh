#!/usr/bin/env bash
# Deployment checks: Helm chart, schemas, Dockerfiles, workflows, scripts, cargo-deny, and the
# runtime image built with buildah from a static binary and run.
#
# Usage (from the repository root, as root on Debian; nothing needs Docker or GitHub):
#   .ci/deploy-checks.sh [PATH_TO_STATIC_BINARY]
# The binary may also be given as HALO_GATEWAY_BIN. Without either, it is built here with
#   RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target x86_64-unknown-linux-gnu
# (into $CARGO_TARGET_DIR, default target/; several minutes on 2 cores).
# Other environment:
#   ADVISORY_DB   RustSec advisory-db snapshot directory for an offline `cargo deny`
#                 (default ../shared/advisory-db; when missing, cargo-deny fetches the live one)
#   TOOLS         where the lint tools go (default .tools, git-ignored)
#   SKIP_IMAGE=1  skip the static binary + buildah section
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"

export DEBIAN_FRONTEND=noninteractive
export CARGO_TERM_COLOR=never
start_all=$SECONDS
section_start=$SECONDS
current=""
section() {
  if [ -n "$current" ]; then printf -- '---- %s: ok (%ss)\n' "$current" "$((SECONDS - section_start))"; fi
  current=$1
  section_start=$SECONDS
  printf '\n==== %s ====\n' "$1"
}
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

work=$(mktemp -d)
image_ref=localhost/halo-gateway:deploy-checks
ctr=""
issuer_pid=""
serve_pid=""
cleanup() {
  if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; fi
  if [ -n "$issuer_pid" ]; then kill "$issuer_pid" 2>/dev/null || true; fi
  if [ -n "$ctr" ]; then buildah rm "$ctr" >/dev/null 2>&1 || true; fi
  if command -v buildah >/dev/null 2>&1; then buildah rmi "$image_ref" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

apt_install() {
  if [ "$(id -u)" != 0 ]; then fail "need root to apt-get install $*"; fi
  apt-get update -qq
  # With recommends: buildah needs crun (to run) and netavark (to build) from them.
  apt-get install -y -qq "$@" >/dev/null
}

# --------------------------------------------------------------------------------------------
section "lint tools (helm, kubernetes-validate, hadolint, actionlint, shellcheck)"
TOOLS=${TOOLS:-$root/.tools}
export TOOLS
installer="$here/../../shared/tools/install-lint-tools.sh"
[ -f "$installer" ] || fail "lint tool installer not found at $installer"
bash "$installer"
export PATH="$TOOLS/bin:$PATH"

chart=charts/halo-gateway
kube_version=1.31.0
release=cdrplatform-api-access

# The command from Halo's Okta guide, with only the chart path changed (and Gateway__Upstream),
# as `helm template`: upgrade-only flags (--reuse-values, --atomic) do not apply to template.
okta_render() {
  local OKTA_ISSUER_URI=https://example.okta.com/oauth2/aus1example
  local VALID_AUDIENCE=api://halo
  local HALO_DOMAIN=halo.example.com
  helm template "$release" "$chart" --kube-version "$kube_version" \
    --set configuration.AuthenticationScheme="Bearer" \
    --set configuration.Authentication__Schemes__Bearer__Authority="${OKTA_ISSUER_URI:?}" \
    --set configuration.Authentication__Schemes__Bearer__ValidIssuer="${OKTA_ISSUER_URI:?}" \
    --set configuration.Authentication__Schemes__Bearer__ValidAudiences__0="${VALID_AUDIENCE:?}" \
    --set strategy.type="Recreate" --set ingress.enabled=true \
    --set ingress.tls.enabled=true --set ingress.tls.domain="${HALO_DOMAIN:?}" \
    --set configuration.Gateway__Upstream=http://cdrplatform-api:8080
}
sidecar_values=$chart/examples/sidecar-values.yaml
sidecar_render() { helm template cdrplatform-api "$chart" --kube-version "$kube_version" -f "$sidecar_values"; }
# Every optional object on, to lint and validate the templates no default render reaches.
full_args=(
  --set configuration.Gateway__Upstream=http://cdrplatform-api:8080
  --set autoscaling.enabled=true --set autoscaling.targetMemoryUtilizationPercentage=80
  --set networkPolicy.enabled=true --set networkPolicy.egress.enabled=true
  --set ingress.enabled=true --set ingress.className=nginx
  --set ingress.tls.enabled=true --set ingress.tls.domain=halo.example.com --set ingress.tls.secretName=halo-tls
  --set existingSecret=halo-gateway-secrets --set metrics.serviceMonitor.enabled=true
  --set redis.enabled=true --set "redis.to[0].podSelector.matchLabels.app=redis"
  --set metrics.dashboard.enabled=true --set metrics.prometheusRule.enabled=true
  --set configFile='[gateway]'
  --set 'extraEnv[0].name=Gateway__LogLevel' --set 'extraEnv[0].value=debug'
)

# --------------------------------------------------------------------------------------------
section "helm lint --strict"
helm lint --strict "$chart" --set configuration.Gateway__Upstream=http://cdrplatform-api:8080
helm lint --strict "$chart" -f "$sidecar_values"
helm lint --strict "$chart" "${full_args[@]}"
okta_render >/dev/null
# The chart README documents every value.
"$TOOLS/venv/bin/python" - "$chart" <<'PY'
import sys, yaml
chart = sys.argv[1]
values = yaml.safe_load(open(f"{chart}/values.yaml"))
readme = open(f"{chart}/README.md").read()
whole = {"configuration", "ingress.annotations", "resources", "podSecurityContext", "securityContext",
         "sidecar.podSecurityContext", "strategy.rollingUpdate", "metrics.dashboard.labels"}
missing = []
def walk(d, prefix=""):
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and v and key not in whole:
            walk(v, key)
        elif f"| `{key}` |" not in readme:
            missing.append(key)
walk(values)
if missing:
    sys.exit(f"{chart}/README.md does not document: {', '.join(missing)}")
print("chart README documents every value")
PY

# --------------------------------------------------------------------------------------------
section "helm template (Okta guide command) + kubernetes-validate --strict $kube_version"
okta_render > "$work/okta.yaml"
kubernetes-validate --strict --quiet -k "$kube_version" "$work/okta.yaml"
grep -q 'type: Recreate' "$work/okta.yaml" || fail "strategy.type=Recreate not rendered"
grep -q 'rollingUpdate' "$work/okta.yaml" && fail "rollingUpdate rendered with strategy.type=Recreate"
grep -q 'Authentication__Schemes__Bearer__ValidAudiences__0: api://halo' "$work/okta.yaml" \
  || fail "configuration keys are not rendered verbatim"
grep -q -- '- "halo.example.com"' "$work/okta.yaml" || fail "ingress TLS host missing"
echo "okta render: $(grep -c '^kind:' "$work/okta.yaml") objects valid"

# --------------------------------------------------------------------------------------------
section "helm template (sidecar example) + kubernetes-validate --strict $kube_version"
sidecar_render > "$work/sidecar.yaml"
kubernetes-validate --strict --quiet -k "$kube_version" "$work/sidecar.yaml"
grep -q 'Gateway__Upstream: http://127.0.0.1:8080' "$work/sidecar.yaml" || fail "sidecar upstream is not loopback"
diff -u "$chart/examples/sidecar-rendered.yaml" "$work/sidecar.yaml" \
  || fail "$chart/examples/sidecar-rendered.yaml is stale; regenerate it with: helm template cdrplatform-api $chart --kube-version $kube_version -f $sidecar_values > $chart/examples/sidecar-rendered.yaml"
echo "sidecar render: $(grep -c '^kind:' "$work/sidecar.yaml") objects valid, checked-in example up to date"

# --------------------------------------------------------------------------------------------
section "helm template (all optional objects) + kubernetes-validate --strict $kube_version"
# ServiceMonitor and PrometheusRule are prometheus-operator CRDs, which kubernetes-validate has no
# schema for: those two kinds (and only those) are split off and checked against a minimal schema
# of the fields the chart sets; everything else is validated against Kubernetes' own schemas.
helm template "$release" "$chart" --kube-version "$kube_version" "${full_args[@]}" > "$work/full.yaml"
"$TOOLS/venv/bin/python" - "$work/full.yaml" "$work/full-core.yaml" "$work/rules.yaml" <<'PY'
import sys, jsonschema, yaml
rendered, core_out, rules_out = sys.argv[1:]
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
string_map = {"type": "object", "additionalProperties": {"type": "string"}}
metadata = {"type": "object", "required": ["name", "namespace"],
            "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}, "labels": string_map}}
duration = {"type": "string", "pattern": "^([0-9]+(ms|s|m|h|d|w|y))+$"}
rule = {"type": "object", "required": ["alert", "expr"], "additionalProperties": False,
        "properties": {"alert": {"type": "string"}, "expr": {"type": "string"}, "for": duration,
                       "labels": string_map, "annotations": string_map}}
specs = {
    "ServiceMonitor": {
        "type": "object", "required": ["selector", "endpoints"], "additionalProperties": False,
        "properties": {
            "namespaceSelector": {"type": "object"},
            "selector": {"type": "object", "required": ["matchLabels"]},
            "endpoints": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["port"], "additionalProperties": False,
                "properties": {"port": {"type": "string"}, "path": {"type": "string"},
                               "interval": duration, "scrapeTimeout": duration}}}}},
    "PrometheusRule": {
        "type": "object", "required": ["groups"], "additionalProperties": False,
        "properties": {"groups": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["name", "rules"], "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "rules": {"type": "array", "minItems": 1, "items": rule}}}}}},
}
core, kinds = [], []
for doc in docs:
    spec = specs.get(doc.get("kind")) if doc.get("apiVersion") == "monitoring.coreos.com/v1" else None
    if spec is None:
        core.append(doc)
        continue
    jsonschema.validate(doc, {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
                              "properties": {"metadata": metadata, "spec": spec}})
    kinds.append(doc["kind"])
    if doc["kind"] == "PrometheusRule":
        # promtool reads the rule groups without the CRD envelope.
        yaml.safe_dump(doc["spec"], open(rules_out, "w"), sort_keys=False)
missing = set(specs) - set(kinds)
if missing:
    sys.exit(f"not rendered: {', '.join(sorted(missing))}")
yaml.safe_dump_all(core, open(core_out, "w"), sort_keys=False)
print(f"CRD objects valid against their minimal schemas: {', '.join(kinds)}")
PY
kubernetes-validate --strict --quiet -k "$kube_version" "$work/full-core.yaml"
echo "full render: $(grep -c '^kind:' "$work/full.yaml") objects, $(grep -c '^kind:' "$work/full-core.yaml") validated against Kubernetes $kube_version"

# --------------------------------------------------------------------------------------------
section "Grafana dashboard ConfigMap; PrometheusRule through promtool check rules and test rules"
"$TOOLS/venv/bin/python" - "$work/full.yaml" "$chart/dashboards" <<'PY'
import json, os, sys, yaml
rendered, folder = sys.argv[1:]
maps = [d for d in yaml.safe_load_all(open(rendered)) if d and d["kind"] == "ConfigMap"
        and (d["metadata"].get("labels") or {}).get("grafana_dashboard") == "1"]
if len(maps) != 1:
    sys.exit(f"want one ConfigMap labelled grafana_dashboard: \"1\", got {len(maps)}")
data = maps[0]["data"]
files = sorted(f for f in os.listdir(folder) if f.endswith(".json"))
if sorted(data) != files:
    sys.exit(f"dashboard ConfigMap holds {sorted(data)}, the chart has {files}")
for name in files:
    if json.loads(data[name]) != json.load(open(os.path.join(folder, name))):
        sys.exit(f"{name} in the ConfigMap differs from {folder}/{name}")
    print(f"{name}: {len(json.loads(data[name])['panels'])} panels, verbatim in {maps[0]['metadata']['name']}")
PY
if ! command -v promtool >/dev/null 2>&1; then
  echo "installing promtool (Debian package prometheus)"
  if [ "$(id -u)" != 0 ]; then fail "need root to apt-get install prometheus (for promtool)"; fi
  apt-get update -qq
  # Without recommends: only promtool is wanted, not the exporters. No service starts in a
  # container (policy-rc.d) or a CI job.
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
promtool --version | head -1
promtool check rules "$work/rules.yaml"
# The unit tests load the rendered rules as rules.yaml beside themselves.
cp .ci/alert-rules.test.yaml "$work/alert-rules.test.yaml"
promtool test rules "$work/alert-rules.test.yaml"
# The checked-in render is what the README links to and what tests/monitoring.rs checks against
# a running gateway's /metrics.
rules_example=$chart/examples/prometheusrule-rendered.yaml
rules_render=(helm template halo-gateway "$chart" --kube-version "$kube_version" --namespace monitoring
  --set configuration.Gateway__Upstream=http://cdrplatform-api:8080 --set metrics.prometheusRule.enabled=true
  --show-only templates/prometheusrule.yaml)
"${rules_render[@]}" > "$work/prometheusrule.yaml"
diff -u "$rules_example" "$work/prometheusrule.yaml" \
  || fail "$rules_example is stale; regenerate it with: ${rules_render[*]} > $rules_example"
echo "$rules_example up to date"

# --------------------------------------------------------------------------------------------
section "chart refuses broken values"
expect_render_failure() {
  local why=$1; shift
  if out=$(helm template "$release" "$chart" --kube-version "$kube_version" "$@" 2>&1); then
    fail "render should fail: $why"
  fi
  printf 'ok, refused (%s): %s\n' "$why" "$(printf '%s' "$out" | grep -o 'error calling fail: .*\|execution error.*' | head -1 | cut -c1-160)"
}
expect_render_failure "no upstream"
expect_render_failure "tls without domain" --set configuration.Gateway__Upstream=http://u --set ingress.enabled=true --set ingress.tls.enabled=true
expect_render_failure "grace period shorter than drain" --set configuration.Gateway__Upstream=http://u --set terminationGracePeriodSeconds=5
expect_render_failure "chart-managed key in configuration" --set configuration.Gateway__Upstream=http://u --set configuration.Gateway__Listen=0.0.0.0:1
expect_render_failure "sidecar port clash" -f "$sidecar_values" --set containerPorts.http=8080
expect_render_failure "Redis URL in the ConfigMap" --set configuration.Gateway__Upstream=http://u --set configuration.Gateway__Redis__Url=redis://:pw@redis:6379
expect_render_failure "redis without a Secret" --set configuration.Gateway__Upstream=http://u --set redis.enabled=true

# --------------------------------------------------------------------------------------------
section "hadolint"
hadolint Dockerfile Dockerfile.runtime
echo "Dockerfile, Dockerfile.runtime: clean"

# --------------------------------------------------------------------------------------------
section "actionlint"
actionlint -shellcheck "$(command -v shellcheck)" .github/workflows/*.yml
echo ".github/workflows: clean"

# --------------------------------------------------------------------------------------------
section "shellcheck"
scripts=()
for f in .ci/*; do
  [ -f "$f" ] && head -1 "$f" | grep -qE '^#!.*(ba)?sh' && scripts+=("$f")
done
shellcheck "${scripts[@]}"
echo "clean: ${scripts[*]}"

# --------------------------------------------------------------------------------------------
section "cargo deny (licenses, bans, sources, advisories)"
if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "installing cargo-deny (cargo install --locked; about 4 minutes on 2 cores)"
  t0=$SECONDS
  cargo install --locked --quiet cargo-deny
  echo "cargo-deny installed in $((SECONDS - t0))s"
fi
cargo deny --version
cargo fetch --locked --quiet || fail "Cargo.lock is missing or out of date for Cargo.toml (cargo fetch --locked failed)"
ADVISORY_DB=${ADVISORY_DB:-$root/../shared/advisory-db}
if [ -d "$ADVISORY_DB/crates" ]; then
  # cargo-deny reads the database as a git checkout named after its URL under db-path; give it
  # the snapshot there and never fetch.
  db_dir="$work/advisory-dbs/advisory-db-3157b0e258782691"
  mkdir -p "$(dirname "$db_dir")"
  cp -r "$ADVISORY_DB" "$db_dir"
  git -C "$db_dir" init -q
  git -C "$db_dir" add -A
  git -C "$db_dir" -c user.name=ci -c user.email=ci@localhost commit -q -m "advisory-db snapshot"
  sed "s|^db-path = .*|db-path = \"$work/advisory-dbs\"|" deny.toml > "$work/deny.toml"
  echo "advisory db: $(head -1 "$ADVISORY_DB/SNAPSHOT" 2>/dev/null || echo "$ADVISORY_DB")"
  deny_args=(--offline --locked --config "$work/deny.toml")
else
  echo "no advisory snapshot at $ADVISORY_DB: fetching the live database"
  deny_args=(--locked)
fi
if cargo deny "${deny_args[@]}" check --hide-inclusion-graph --show-stats >"$work/deny.log" 2>&1; then
  # Only the summary; duplicate-version warnings and license notes are in the full output.
  grep -E '^\s*(advisories|bans|licenses|sources) (ok|FAILED)' "$work/deny.log"
else
  cat "$work/deny.log"
  fail "cargo deny check failed"
fi

# --------------------------------------------------------------------------------------------
if [ "${SKIP_IMAGE:-0}" = 1 ]; then
  echo "SKIP_IMAGE=1: static binary and image checks skipped"
  printf '\n==== all deploy checks passed in %ss ====\n' "$((SECONDS - start_all))"
  exit 0
fi

section "static binary"
bin=${1:-${HALO_GATEWAY_BIN:-}}
if [ -z "$bin" ]; then
  triple=x86_64-unknown-linux-gnu
  echo "no binary given: building a static one (--target $triple, +crt-static)"
  RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target "$triple" --bin halo-gateway
  bin="${CARGO_TARGET_DIR:-target}/$triple/release/halo-gateway"
fi
[ -x "$bin" ] || fail "no executable at $bin"
if readelf -lW "$bin" | grep -q 'Requesting program interpreter'; then
  fail "$bin is dynamically linked (it has an ELF interpreter); build with +crt-static"
fi
if readelf -dW "$bin" | grep -q '(NEEDED)'; then
  fail "$bin needs shared libraries: $(readelf -dW "$bin" | grep '(NEEDED)' | tr -s ' ')"
fi
host_version=$("$bin" --version) || fail "$bin --version failed"
printf '%s' "$host_version" | grep -qE '^halo-gateway [0-9]' \
  || fail "$bin --version printed '$host_version', not 'halo-gateway <version>'"
echo "$bin: static ($(stat -c %s "$bin") bytes), $host_version"

# --------------------------------------------------------------------------------------------
section "runtime image (buildah bud --isolation chroot, Dockerfile.runtime) and run"
command -v buildah >/dev/null 2>&1 || apt_install buildah
buildah --version
ctx="$work/image"
mkdir -p "$ctx"
cp "$bin" "$ctx/halo-gateway"
cp /etc/ssl/certs/ca-certificates.crt "$ctx/ca-certificates.crt" \
  || fail "no CA bundle at /etc/ssl/certs/ca-certificates.crt (apt-get install ca-certificates)"
version=$(printf '%s' "$host_version" | awk '{print $2}')
buildah bud --isolation chroot --quiet -f "$root/Dockerfile.runtime" \
  --build-arg VERSION="$version" --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  -t "$image_ref" "$ctx" >/dev/null || fail "buildah bud failed (see the error above)"
buildah images "$image_ref"

# The image's own metadata: numeric non-root user, the binary as entrypoint, OCI labels,
# no healthcheck.
buildah inspect --type image "$image_ref" >"$work/inspect.json"
python3 - "$work/inspect.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["OCIv1"]["config"]
print("config:", json.dumps(c))
problems = []
if c.get("User") != "65532:65532":
    problems.append(f"User is {c.get('User')!r}, want '65532:65532'")
if c.get("Entrypoint") != ["/usr/local/bin/halo-gateway"]:
    problems.append(f"Entrypoint is {c.get('Entrypoint')!r}")
labels = c.get("Labels") or {}
for key in ("org.opencontainers.image.title", "org.opencontainers.image.version",
            "org.opencontainers.image.revision", "org.opencontainers.image.licenses"):
    if not labels.get(key):
        problems.append(f"label {key} missing")
if "Healthcheck" in c:
    problems.append("image has a HEALTHCHECK")
if problems:
    sys.exit("image config: " + "; ".join(problems))
print("image config ok: user 65532:65532, entrypoint the binary, OCI labels, no healthcheck")
PY

ctr=$(buildah from --quiet "$image_ref")
run() { buildah run --isolation chroot --user 65532:65532 "$ctr" -- "$@"; }
echo "\$ halo-gateway --version   (in the image, uid 65532)"
image_version=$(run /usr/local/bin/halo-gateway --version) || fail "--version failed in the image"
echo "$image_version"
[ "$image_version" = "$host_version" ] || fail "the image printed '$image_version', the binary '$host_version'"
echo "\$ halo-gateway check-config --help   (in the image)"
run /usr/local/bin/halo-gateway check-config --help >"$work/check-config-help.txt" \
  || { cat "$work/check-config-help.txt"; fail "check-config --help failed in the image"; }
cat "$work/check-config-help.txt"
grep -qi 'usage' "$work/check-config-help.txt" || fail "check-config --help printed no usage"
# The chart's environment, as rendered for the Okta guide command, must be accepted by the
# binary in the image. The issuer is the gateway's own embedded one (`dev --issuer-only`, run
# from the host binary) because this machine cannot reach Okta; only Authority/ValidIssuer are
# redirected to it (and RequireHttpsMetadata=false for its plain http).
echo "\$ halo-gateway check-config   (in the image, with the Okta render's ConfigMap as environment)"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
"$bin" dev --issuer-only --issuer-listen "127.0.0.1:$port" >"$work/issuer.log" 2>&1 &
issuer_pid=$!
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done
issuer="http://127.0.0.1:$port/oauth2/default"
# The Okta render's ConfigMap as `buildah run --env` arguments, with KEY=VALUE overrides.
chart_env() {
  "$TOOLS/venv/bin/python" - "$work/okta.yaml" "$@" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
env = dict(next(d for d in docs if d["kind"] == "ConfigMap")["data"])
assert env["Authentication__Schemes__Bearer__Authority"].startswith("https://"), env
env.update(arg.split("=", 1) for arg in sys.argv[2:])
for key, value in sorted(env.items()):
    print("--env")
    print(f"{key}={value}")
PY
}
bearer=Authentication__Schemes__Bearer__
mapfile -t env_args < <(chart_env "${bearer}Authority=$issuer" "${bearer}ValidIssuer=$issuer" "${bearer}RequireHttpsMetadata=false")
run_env() { buildah run --isolation chroot --user 65532:65532 "${env_args[@]}" "$ctr" -- "$@"; }
if ! run_env /usr/local/bin/halo-gateway check-config >"$work/check-config.txt" 2>&1; then
  cat "$work/check-config.txt"
  fail "check-config rejected the chart's environment in the image"
fi
grep -E '^Gateway__(Listen|AdminListen|ShutdownTimeout|Upstream) |^# |configuration ok' "$work/check-config.txt"

# `serve` in the image with the same environment (listeners moved to free loopback ports; the
# container shares the host network): the chart's probe paths answer, /readyz once the keys
# are loaded, /metrics is Prometheus text, and the proxy port asks for a bearer token.
echo "\$ halo-gateway serve   (in the image; probing the chart's endpoints)"
http_port=$(free_port)
admin_port=$(free_port)
mapfile -t serve_env < <(chart_env "${bearer}Authority=$issuer" "${bearer}ValidIssuer=$issuer" \
  "${bearer}RequireHttpsMetadata=false" "Gateway__Listen=127.0.0.1:$http_port" "Gateway__AdminListen=127.0.0.1:$admin_port")
buildah run --isolation chroot --user 65532:65532 "${serve_env[@]}" "$ctr" -- /usr/local/bin/halo-gateway serve \
  >"$work/serve.log" 2>&1 &
serve_pid=$!
if ! python3 - "$http_port" "$admin_port" <<'PY'
import sys, time, urllib.request, urllib.error
http_port, admin_port = sys.argv[1:]
def get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()
    except OSError:
        return None, None, ""
admin = f"http://127.0.0.1:{admin_port}"
deadline = time.time() + 30
while time.time() < deadline and get(admin + "/readyz")[0] != 200:
    time.sleep(0.2)
for path in ("/healthz", "/readyz", "/metrics"):
    status, _, body = get(admin + path)
    print(f"GET {path} -> {status}: {body.splitlines()[0][:100] if body else ''}")
    if status != 200:
        sys.exit(f"{path} answered {status}")
if "# TYPE" not in get(admin + "/metrics")[2]:
    sys.exit("/metrics is not Prometheus text")
status, headers, _ = get(f"http://127.0.0.1:{http_port}/api/v1/policies")
print(f"GET /api/v1/policies without a token -> {status}, WWW-Authenticate: {headers.get('WWW-Authenticate') if headers else None}")
if status != 401:
    sys.exit("the proxy port did not answer 401 without a token")
PY
then
  kill "$serve_pid" 2>/dev/null || true
  cat "$work/serve.log"
  fail "the gateway in the image did not serve the chart's probe endpoints"
fi
# buildah run ends the process with SIGKILL, so graceful shutdown is not observable here.
kill "$serve_pid" 2>/dev/null || true
wait "$serve_pid" 2>/dev/null || true
kill "$issuer_pid" 2>/dev/null || true
wait "$issuer_pid" 2>/dev/null || true
issuer_pid=""

# No shell in the image: this must fail.
if run /bin/sh -c true >/dev/null 2>&1; then fail "the runtime image has a shell"; fi
echo "no /bin/sh in the image (as intended)"

printf -- '---- %s: ok (%ss)\n' "$current" "$((SECONDS - section_start))"
printf '\n==== all deploy checks passed in %ss ====\n' "$((SECONDS - start_all))"
