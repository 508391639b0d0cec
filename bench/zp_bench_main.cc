// zp_bench_main.cc - the only C++ file of the micro-benchmarks: registers
// every case of zp_bench_cases.c with Google Benchmark and runs them.
//
// Names read pool/<backend>/<case>/<key>:<value>.../manual_time/threads:<n>,
// malloc/<allocator>/<case>/..., tls_stack/floor/<case>/...  Every case is
// timed in wall-clock time (CPU time would hide time spent waiting) of the
// whole run, measured by zpb_enter/zpb_leave and handed over with
// SetIterationTime (UseManualTime): UseRealTime would average the threads'
// own wall times, which overstates throughput when threads outnumber cores.
// items_per_second counts get+put pairs, all threads together.
//
// Options of our own (removed before Google Benchmark sees the rest):
//   --zp_threads=1,2,4   thread counts for the threaded cases (default 1,2,4)
//   --zp_smoke           the reduced matrix (fewer sizes and parameters)
//   --zp_list            print the case names and exit
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "zeropool.h"
#include "zp_bench_cases.h"
#include "zp_progs.h"

namespace
{

void run_case(benchmark::State &state, zpb_case *c)
{
	const int tid = state.thread_index();
	const int n = state.threads();
	if (zpb_enter(c, tid, n) != 0) {
		state.SkipWithError(zpb_error());
		while (state.KeepRunningBatch(1)) {
		}
		return;
	}
	const benchmark::IterationCount batch =
	    static_cast<benchmark::IterationCount>(zpb_case_batch(c));
	while (state.KeepRunningBatch(batch))
		zpb_run(c, tid, static_cast<uint64_t>(batch));
	zpb_counter ctr[ZPB_MAX_COUNTERS];
	double wall = 0;
	size_t nc = zpb_leave(c, tid, n, &wall, ctr, ZPB_MAX_COUNTERS);
	state.SetIterationTime(wall);
	for (size_t i = 0; i < nc; i++)
		state.counters[ctr[i].name] = benchmark::Counter(ctr[i].value);
	state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(zpb_case_items(c, tid)));
	if (tid == 0 && zpb_case_label(c) != nullptr)
		state.SetLabel(zpb_case_label(c));
}

bool parse_threads(const char *s, std::vector<unsigned> &out)
{
	out.clear();
	while (*s != '\0') {
		char *end = nullptr;
		unsigned long v = std::strtoul(s, &end, 10);
		if (end == s || v == 0 || v > ZPB_MAX_THREADS)
			return false;
		out.push_back(static_cast<unsigned>(v));
		s = end;
		if (*s == ',' || *s == ' ')
			s++;
		else if (*s != '\0')
			return false;
	}
	return !out.empty();
}

} // namespace

int main(int argc, char **argv)
{
	std::vector<unsigned> threads = {1, 2, 4};
	bool smoke = false, list = false;
	int kept = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (std::strncmp(a, "--zp_threads=", 13) == 0) {
			if (!parse_threads(a + 13, threads)) {
				std::fprintf(stderr, "zp_bench: bad --zp_threads list: %s\n",
					     a + 13);
				return 2;
			}
		} else if (std::strcmp(a, "--zp_smoke") == 0) {
			smoke = true;
		} else if (std::strcmp(a, "--zp_list") == 0) {
			list = true;
		} else if (std::strcmp(a, "--help") == 0 || std::strcmp(a, "-h") == 0) {
			std::printf("zp_bench: zeropool micro-benchmarks (Google Benchmark)\n"
				    "  --zp_threads=LIST  thread counts for threaded cases "
				    "(default 1,2,4)\n"
				    "  --zp_smoke         reduced matrix\n"
				    "  --zp_list          print case names and exit\n"
				    "plus the usual --benchmark_* flags.\n");
			argv[kept++] = argv[i];
		} else {
			argv[kept++] = argv[i];
		}
	}
	argc = kept;
	argv[argc] = nullptr;

	zpb_options opt = {threads.data(), threads.size(), smoke ? 1 : 0};
	if (zpb_cases_build(&opt) < 0) {
		std::fprintf(stderr, "zp_bench: %s\n", zpb_error());
		return 1;
	}
	if (list) {
		for (size_t i = 0; i < zpb_case_count(); i++) {
			zpb_case *c = zpb_case_at(i);
			std::printf("%s threads:", zpb_case_name(c));
			for (size_t t = 0; t < zpb_case_nthreads(c); t++)
				std::printf("%s%u", t ? "," : "", zpb_case_threads(c, t));
			std::printf("\n");
		}
		zpb_cases_free();
		return 0;
	}

	std::string backends;
	for (size_t i = 0; i < zp_backend_count(); i++)
		backends += (i ? "," : "") + std::string(zp_backend_at(i));
	benchmark::AddCustomContext("zeropool_version", std::to_string(ZP_VERSION_MAJOR) + "." +
							    std::to_string(ZP_VERSION_MINOR) + "." +
							    std::to_string(ZP_VERSION_PATCH));
	benchmark::AddCustomContext("zeropool_backends", backends);
	benchmark::AddCustomContext("zeropool_default_backend", zp_default_backend());
	benchmark::AddCustomContext("zeropool_link", ZPB_LINK);
	benchmark::AddCustomContext("malloc_allocator", zpp_malloc_provider());
	benchmark::AddCustomContext("malloc_library", zpp_malloc_library());
	benchmark::AddCustomContext("dpdk", zpb_have_dpdk() ? "yes" : "no");
	benchmark::AddCustomContext("matrix", smoke ? "smoke" : "full");

	for (size_t i = 0; i < zpb_case_count(); i++) {
		zpb_case *c = zpb_case_at(i);
		benchmark::internal::Benchmark *b = benchmark::RegisterBenchmark(
		    zpb_case_name(c), [c](benchmark::State &st) { run_case(st, c); });
		b->UseManualTime();
		for (size_t t = 0; t < zpb_case_nthreads(c); t++)
			b->Threads(static_cast<int>(zpb_case_threads(c, t)));
	}

	benchmark::Initialize(&argc, argv);
	if (benchmark::ReportUnrecognizedArguments(argc, argv))
		return 2;
	benchmark::RunSpecifiedBenchmarks();
	benchmark::Shutdown();
	zpb_cases_free();
	return 0;
}
