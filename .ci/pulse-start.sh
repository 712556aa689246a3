# shellcheck shell=bash
# Starts a headless PulseAudio with a null sink `ci_sink`, for gradtone-live's real-device test.
#
# SOURCE it (do not run it) before `cargo test`:   source .ci/pulse-start.sh
# It exports PULSE_SERVER (the daemon's socket) and GRADTONE_REQUIRE_PULSE=1 (so the test fails
# instead of skipping when the server is unreachable). Safe under `set -euo pipefail`: all work
# happens in functions whose failures are caught; it installs no traps and never exits the
# sourcing shell. `gradtone_pulse_stop` ends the daemon and the keep-alive stream.

gradtone_pulse_log() { echo "pulse-start: $*" >&2; }

gradtone_pulse_install() {
  if command -v pulseaudio >/dev/null 2>&1 && command -v pactl >/dev/null 2>&1 \
    && command -v pacat >/dev/null 2>&1 && command -v parec >/dev/null 2>&1; then
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  gradtone_pulse_log "installing pulseaudio pulseaudio-utils"
  $sudo apt-get update -qq || return 1
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    pulseaudio pulseaudio-utils >/dev/null || return 1
}

gradtone_pulse_start() {
  gradtone_pulse_install || { gradtone_pulse_log "install failed"; return 1; }

  local dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/gradtone-pulse.XXXXXX") || return 1
  chmod 700 "$dir" || return 1
  GRADTONE_PULSE_DIR=$dir
  # The daemon puts its socket (and cookie) under XDG_RUNTIME_DIR/HOME: give it a private one.
  # `-n` loads no default.pa: just the socket and the null sink, no suspend-on-idle, no probing
  # of (absent) sound cards. Running as root is fine without --system: it only warns.
  XDG_RUNTIME_DIR=$dir HOME=$dir pulseaudio --daemonize=no -n --exit-idle-time=-1 \
    --use-pid-file=no --log-target=stderr \
    -L "module-native-protocol-unix auth-anonymous=1" \
    -L "module-null-sink sink_name=ci_sink rate=48000 channels=2" \
    >"$dir/pulseaudio.log" 2>&1 &
  GRADTONE_PULSE_PID=$!

  export PULSE_SERVER="unix:$dir/pulse/native"
  # Clients must not look for the cookie of some other server.
  export PULSE_COOKIE="$dir/.config/pulse/cookie"

  local i=0
  until pactl info >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -gt 100 ] || ! kill -0 "$GRADTONE_PULSE_PID" 2>/dev/null; then
      gradtone_pulse_log "daemon did not come up within 10 s; its log:"
      sed 's/^/  | /' "$dir/pulseaudio.log" >&2 || true
      return 1
    fi
    sleep 0.1
  done
  pactl set-default-sink ci_sink || return 1

  # Keep the null sink busy at low latency: an idle null sink renders ~2 s ahead, which stalls
  # a newly created stream for that long.
  pacat --raw --latency-msec=10 --format=s16le --rate=48000 --channels=2 /dev/zero \
    >/dev/null 2>&1 &
  GRADTONE_PACAT_PID=$!
  sleep 2.2
  if ! kill -0 "$GRADTONE_PACAT_PID" 2>/dev/null; then
    gradtone_pulse_log "keep-alive stream died"
    return 1
  fi
  gradtone_pulse_log "PulseAudio up at $PULSE_SERVER (default sink ci_sink)"
}

gradtone_pulse_stop() {
  if [ -n "${GRADTONE_PACAT_PID:-}" ]; then kill "$GRADTONE_PACAT_PID" 2>/dev/null || true; fi
  if [ -n "${GRADTONE_PULSE_PID:-}" ]; then kill "$GRADTONE_PULSE_PID" 2>/dev/null || true; fi
  GRADTONE_PACAT_PID=""
  GRADTONE_PULSE_PID=""
}

if ! gradtone_pulse_start; then
  gradtone_pulse_log "FAILED to start PulseAudio; the live-audio test will fail (GRADTONE_REQUIRE_PULSE=1)"
fi
# Set even on failure: CI expects a working server, so the test must fail loudly, not skip.
export GRADTONE_REQUIRE_PULSE=1
