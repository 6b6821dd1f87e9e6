// What a search leaves behind for a person: candidates.json and .csv (shape, parameters, memory
// breakdown, metrics), pareto.svg (memory against quality, the front and the parent marked),
// best.shape.json (what `minipuzzle prune --shape` takes), and a ranked table for the terminal.
#pragma once

#include "search/search.h"

#include <nlohmann/json_fwd.hpp>

#include <string>

namespace mp {

nlohmann::json shape_json(const CandidateResult& c, const ModelConfig& parent);
// Writes the four files into `dir` (created if missing), each atomically.
void write_search_outputs(const SearchResult& r, const std::string& dir, const std::string& quality_metric);
std::string search_table(const SearchResult& r, size_t rows, const std::string& quality_metric);

}  // namespace mp
