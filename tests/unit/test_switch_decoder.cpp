// SwitchDecoder: uprobe hits on greenlet's entry points become switches with their origin and
// the generation that tells a reused address apart.
#include <catch2/catch.hpp>

#include <map>

#include "swprof/greenlet.h"

using swprof::python::GreenletSwitch;
using swprof::python::SwitchDecoder;
using swprof::python::SwitchEntry;
using swprof::target::UprobeHit;
using Kind = SwitchEntry::Kind;

namespace {

// Sites in the order a session is given them.
std::vector<SwitchEntry> internal_entries() {
  return {{Kind::kStackSwitch, "g_switchstack", 0x1000, 1, true}, {Kind::kStart, "g_initialstub", 0x2000, 1, true}};
}
std::vector<SwitchEntry> public_entries() {
  return {{Kind::kCapiSwitch, "PyGreenlet_Switch", 0x1000, 0, false},
          {Kind::kCapiThrow, "PyGreenlet_Throw", 0x1100, 0, false},
          {Kind::kSwitchMethod, "greenlet.switch", 0x1200, 0, false},
          {Kind::kThrowMethod, "greenlet.throw", 0x1300, 0, false}};
}

UprobeHit hit(int64_t time, uint32_t site, uint64_t arg0, uint64_t arg1 = 0, pid_t tid = 7) {
  UprobeHit h;
  h.time_ns = time;
  h.tid = tid;
  h.site = site;
  h.args_valid = true;
  h.args[0] = arg0;
  h.args[1] = arg1;
  return h;
}

}  // namespace

TEST_CASE("a C-API switch and the method it hands over to are one switch, with what ran before", "[greenlet]") {
  SwitchDecoder d(public_entries(), [](uint64_t) -> uint64_t { FAIL("public entries carry the PyGreenlet"); return 0; });
  std::vector<GreenletSwitch> out;
  std::vector<UprobeHit> hits = {hit(10, 0, 0xA0), hit(11, 2, 0xA0),   // PyGreenlet_Switch(A) -> green_switch(A)
                                 hit(20, 2, 0xB0),                     // B.switch() from Python
                                 hit(30, 0, 0xA0), hit(31, 2, 0xA0),   // back to A
                                 hit(40, 1, 0xB0)};                    // PyGreenlet_Throw(B)
  d.decode(hits, out);
  REQUIRE(out.size() == 4);
  CHECK(out[0].target == 0xA0);
  CHECK(out[0].origin == 0);  // nothing known before the first switch
  CHECK(out[0].time_ns == 10);
  CHECK(out[1].target == 0xB0);
  CHECK(out[1].origin == 0xA0);
  CHECK(out[2].target == 0xA0);
  CHECK(out[2].origin == 0xB0);
  CHECK(out[3].target == 0xB0);
  CHECK(out[3].is_throw);
  CHECK(d.current(7) == 0xB0);
}

TEST_CASE("threads keep their own current greenlet", "[greenlet]") {
  SwitchDecoder d(public_entries(), nullptr);
  std::vector<GreenletSwitch> out;
  d.decode(std::vector<UprobeHit>{hit(1, 2, 0xA0, 0, 7), hit(2, 2, 0xC0, 0, 8), hit(3, 2, 0xB0, 0, 7)}, out);
  REQUIRE(out.size() == 3);
  CHECK(out[2].origin == 0xA0);  // thread 7 ran A; thread 8's C is not its origin
  CHECK(d.current(8) == 0xC0);
}

TEST_CASE("g_initialstub then g_switchstack starts a greenlet; an address reused later is a new generation", "[greenlet]") {
  std::map<uint64_t, uint64_t> objects = {{0x100, 0xA0}, {0x200, 0xB0}};
  int lookups = 0;
  SwitchDecoder d(internal_entries(), [&](uint64_t impl) {
    ++lookups;
    return objects.count(impl) ? objects[impl] : 0;
  });
  std::vector<GreenletSwitch> out;
  // `this` is the second argument (the first is where the result goes).
  d.decode(std::vector<UprobeHit>{hit(1, 0, 0, 0x200),                      // to the hub B
                                  hit(2, 1, 0, 0x100), hit(3, 0, 0, 0x100),  // A starts
                                  hit(4, 0, 0, 0x200), hit(5, 0, 0, 0x100)},
           out);
  REQUIRE(out.size() == 4);
  CHECK_FALSE(out[0].starts);
  CHECK(out[1].starts);
  CHECK(out[1].target == 0xA0);
  CHECK(out[1].target_impl == 0x100);
  CHECK(out[1].generation == 1);
  CHECK_FALSE(out[3].starts);
  CHECK(out[3].generation == 1);
  CHECK(lookups == 2);  // each impl resolved once

  // A died; its PyGreenlet and impl now hold a new greenlet, which starts.
  d.decode(std::vector<UprobeHit>{hit(6, 0, 0, 0x200), hit(7, 1, 0, 0x100), hit(8, 0, 0, 0x100)}, out);
  REQUIRE(out.size() == 6);
  CHECK(out[5].starts);
  CHECK(out[5].target == 0xA0);
  CHECK(out[5].generation == 2);
  CHECK(out[5].origin == 0xB0);
  CHECK(lookups == 3);  // looked up again after the start
  CHECK(d.generation(0xA0) == 2);
}

TEST_CASE("the constructor's pair names a greenlet that is gone before memory could be read", "[greenlet]") {
  auto entries = internal_entries();
  entries.push_back({Kind::kCreate, "UserGreenlet()", 0x3000, 0, true, 1});  // site 2: (impl, PyGreenlet)
  int lookups = 0;
  SwitchDecoder d(entries, [&](uint64_t) -> uint64_t {
    ++lookups;
    return 0;  // freed: memory says nothing
  });
  std::vector<GreenletSwitch> out;
  d.decode(std::vector<UprobeHit>{hit(1, 2, 0x300, 0xC0),                      // made
                                  hit(2, 1, 0, 0x300), hit(3, 0, 0, 0x300),    // started
                                  hit(4, 2, 0x300, 0xD0),                      // C gone; impl reused for D
                                  hit(5, 1, 0, 0x300), hit(6, 0, 0, 0x300),
                                  hit(7, 2, 0x400, 0xC0),                      // C's address reused
                                  hit(8, 1, 0, 0x400), hit(9, 0, 0, 0x400)},
           out);
  REQUIRE(out.size() == 3);
  CHECK(out[0].target == 0xC0);
  CHECK(out[0].starts);
  CHECK(out[0].generation == 1);
  CHECK(out[1].target == 0xD0);
  CHECK(out[1].generation == 1);
  CHECK(out[1].origin == 0xC0);
  CHECK(out[2].target == 0xC0);
  CHECK(out[2].generation == 2);  // a new greenlet at C's address
  CHECK(lookups == 0);
  CHECK(d.unresolved() == 0);
}

TEST_CASE("a switch to the running greenlet is none; an unreadable target is counted", "[greenlet]") {
  SwitchDecoder d(internal_entries(), [](uint64_t impl) -> uint64_t { return impl == 0x100 ? 0xA0 : 0; });
  std::vector<GreenletSwitch> out;
  UprobeHit no_registers = hit(4, 0, 0, 0x100);
  no_registers.args_valid = false;
  d.decode(std::vector<UprobeHit>{hit(1, 0, 0, 0x100), hit(2, 0, 0, 0x100), hit(3, 0, 0, 0x999), no_registers}, out);
  REQUIRE(out.size() == 2);
  CHECK(out[0].target == 0xA0);
  CHECK(out[1].target == 0);  // freed before it could be resolved: still a switch, target unknown
  CHECK(out[1].origin == 0xA0);
  CHECK(d.unresolved() == 2);
}
