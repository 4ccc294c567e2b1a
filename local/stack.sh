#!/usr/bin/env bash
# The local stack: moto server, the gateway and `cargo lambda watch`, on loopback.
#   local/stack.sh up      start all three (stopping leftovers of an earlier run first)
#   local/stack.sh down    stop them; safe to run any time, also after a failed run
#   local/stack.sh status  what is running
# Ports: BG_GATEWAY_PORT (5100), BG_MOTO_PORT (5101), BG_LAMBDA_PORT (5102).
# The functions use the gateway's fake Dynatrace API; their tokens are in the Secrets Manager
# secrets local/dynatrace/deployer-token and local/dynatrace/admin-token (rotate-secret), which
# the demo and the tests fill. Rotations redeploy with the state machine bluegreen-deploy and
# run the workflow bluegreen-rotate, which the demo and the tests create; redeploys poll fast.
# The trigger reads the deployment catalogue from .local/catalogue/*.json (the demo and the tests
# write their files there), checks webhook tokens against the secret local/webhook/token and
# serves the webhook at http://127.0.0.1:$BG_LAMBDA_PORT/lambda-url/trigger.
# moto runs through local/moto_server.py, which answers EventBridge's TestEventPattern.
# Logs: .local/logs/{moto,gateway,lambda}.log, pid files: .local/run/ (BG_LOCAL_DIR moves .local,
# so a second stack on other ports can run beside the first).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.tools/venv"
LOCAL_DIR="${BG_LOCAL_DIR:-$ROOT/.local}"
LOGS="$LOCAL_DIR/logs"
RUN="$LOCAL_DIR/run"
GATEWAY_PORT="${BG_GATEWAY_PORT:-5100}"
MOTO_PORT_LISTEN="${BG_MOTO_PORT:-5101}"
LAMBDA_PORT="${BG_LAMBDA_PORT:-5102}"
HOST=127.0.0.1
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
cd "$ROOT"

say() { printf 'local-stack: %s\n' "$*"; }

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

wait_for() { # name, seconds, command...
  local name=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      say "$name did not come up within ${seconds}s; last lines of its log:"
      tail -n 30 "$LOGS/$name.log" 2>/dev/null || true
      return 1
    fi
    sleep 0.3
  done
}

start() { # name, command...
  local name=$1; shift
  # setsid: each process leads its own group, so `down` stops its children too.
  setsid "$@" >"$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! >"$RUN/$name.pid"
}

stop_one() {
  local name=$1 pidfile="$RUN/$1.pid"
  [[ -f $pidfile ]] || return 0
  local pid; pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    say "stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
}

down() {
  mkdir -p "$RUN"
  stop_one lambda
  stop_one gateway
  stop_one moto
}

require() {
  [[ -x $VENV/bin/moto_server && -x $VENV/bin/cargo-lambda ]] || {
    say "missing $VENV: run 'make tools' first"; exit 1; }
  [[ -x $TARGET_DIR/debug/gateway ]] || {
    say "missing $TARGET_DIR/debug/gateway: run 'make build' first"; exit 1; }
}

up() {
  require
  down >/dev/null
  mkdir -p "$LOGS" "$RUN" "$LOCAL_DIR/catalogue"
  # moto starts empty, so do the catalogue's deployments.
  rm -f "$LOCAL_DIR"/catalogue/*.json
  for p in "$GATEWAY_PORT" "$MOTO_PORT_LISTEN" "$LAMBDA_PORT"; do
    if port_open "$p"; then say "port $p is already in use on $HOST; set BG_GATEWAY_PORT/BG_MOTO_PORT/BG_LAMBDA_PORT"; exit 1; fi
  done

  # moto calls Lambda for Task states at localhost:$MOTO_PORT (its env), so that must be the gateway.
  start moto env MOTO_PORT="$GATEWAY_PORT" "$VENV/bin/python" "$ROOT/local/moto_server.py" -H "$HOST" -p "$MOTO_PORT_LISTEN"
  wait_for moto 60 curl -sf "http://$HOST:$MOTO_PORT_LISTEN/moto-api/data.json"
  curl -sf -X POST "http://$HOST:$MOTO_PORT_LISTEN/moto-api/config" \
    -H 'Content-Type: application/json' -d '{"stepfunctions":{"execute_state_machine":true}}' >/dev/null

  start gateway env BG_GATEWAY_PORT="$GATEWAY_PORT" BG_MOTO_PORT="$MOTO_PORT_LISTEN" BG_LAMBDA_PORT="$LAMBDA_PORT" \
    RUST_LOG="${RUST_LOG:-info}" "$TARGET_DIR/debug/gateway"
  wait_for gateway 30 curl -sf "http://$HOST:$GATEWAY_PORT/_local/health"

  # The functions reach AWS through the gateway; fake credentials, fixed region.
  start lambda env PATH="$VENV/bin:$PATH" AWS_ENDPOINT_URL="http://$HOST:$GATEWAY_PORT" \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
    AWS_EC2_METADATA_DISABLED=true RUST_LOG="${RUST_LOG:-info}" \
    DYNATRACE_API_URL="http://$HOST:$GATEWAY_PORT/dynatrace" \
    DYNATRACE_TOKEN_SECRET="local/dynatrace/deployer-token" \
    DYNATRACE_ADMIN_TOKEN_SECRET="local/dynatrace/admin-token" \
    DEPLOY_STATE_MACHINE_ARN="arn:aws:states:us-east-1:123456789012:stateMachine:bluegreen-deploy" \
    ROTATION_STATE_MACHINE_ARN="arn:aws:states:us-east-1:123456789012:stateMachine:bluegreen-rotate" \
    REDEPLOY_OPTIONS='{"timing":{"pollIntervalSeconds":1,"bakeSeconds":1,"maxHealthPolls":30}}' \
    REDEPLOY_POLL_SECONDS=1 \
    CATALOGUE_PATH="$LOCAL_DIR/catalogue" \
    WEBHOOK_TOKEN_SECRET="local/webhook/token" \
    WEBHOOK_PUBLIC_URL="http://$HOST:$LAMBDA_PORT/lambda-url/trigger" \
    cargo lambda watch --ignore-changes --concurrency 8 -A "$HOST" -P "$LAMBDA_PORT"
  wait_for lambda 120 port_open "$LAMBDA_PORT"
  say "up: gateway http://$HOST:$GATEWAY_PORT (moto :$MOTO_PORT_LISTEN, lambda :$LAMBDA_PORT), logs in ${LOGS#"$ROOT"/}"
}

status() {
  for name in moto gateway lambda; do
    if [[ -f $RUN/$name.pid ]] && kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null; then
      say "$name running (pid $(cat "$RUN/$name.pid"))"
    else
      say "$name not running"
    fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
