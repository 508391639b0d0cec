-- wrk script for bench/server_bench.py: wrk --latency prints the 50/75/90/99th
-- percentiles; this adds the 99.9th, in microseconds, on a line of its own.
done = function(summary, latency, requests)
   io.write(string.format("p99.9_us %.3f\n", latency:percentile(99.9)))
end
