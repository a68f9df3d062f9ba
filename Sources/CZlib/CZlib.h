// zlib, for HdrHistogram's compressed V2 encoding of latency histograms (Report/HdrHistogramEncoding.swift).
#include <zlib.h>
