-- wrk summary in one machine-readable line (latencies in microseconds).
done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d requests=%d socket_errors=%d non2xx=%d\n",
    summary.requests / seconds, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, summary.requests, e.connect + e.read + e.write + e.timeout, e.status))
end
