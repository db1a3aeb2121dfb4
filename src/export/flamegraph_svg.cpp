#include "swprof/export.h"
namespace swprof::exporter {
std::string flamegraph_svg(const analyze::Tree&, const FlamegraphOptions&) { return "<svg/>"; }  // WIP
}
