"""Helpers shared by the benchmarks: child processes, /proc accounting, wrk runs, medians."""
