// Line tables of every supported format, decoded and checked against CPython's own answer.
// The fixtures are the table of one function (the source is in the comment below) as each
// interpreter compiled it, with the line CPython gives for every instruction offset
// (dis.findlinestarts before 3.10, co_lines() after; an offset without a line expects the line
// before it, which is what swprof reports there).
//
//   def sample(a):            # line 2
//       x = a + 1
//       if x > 2:
//           y = x * 2
//       else:
//           y = 0
//       for i in range(3):
//           y += i
//       try:
//           z = 1 / a
//       except ZeroDivisionError:
//           z = 0
//       return (y +
//               z)
#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "swprof/python.h"

using namespace swprof;

namespace {

struct Fixture {
  const char* version;
  python::LineTableFormat format;
  int first_line;
  std::string table;
  std::vector<std::pair<int, int>> offset_lines;
};

const std::vector<Fixture>& fixtures() {
  static const std::vector<Fixture> all = {
  {"3.8", python::LineTableFormat::kLnotab, 2,
   std::string("\x00\x01\x08\x01\x08\x01\x0a\x02\x04\x01\x0c\x01\x0a\x01\x02\x01\x0c\x01\x0e\x01\x0a\x01\x02\x01\x02\xff", 26),
   {{0, 3}, {2, 3}, {4, 3}, {6, 3}, {8, 4}, {10, 4}, {12, 4}, {14, 4}, {16, 5}, {18, 5}, {20, 5}, {22, 5}, {24, 5}, {26, 7}, {28, 7}, {30, 8}, {32, 8}, {34, 8}, {36, 8}, {38, 8}, {40, 8}, {42, 9}, {44, 9}, {46, 9}, {48, 9}, {50, 9}, {52, 10}, {54, 11}, {56, 11}, {58, 11}, {60, 11}, {62, 11}, {64, 11}, {66, 12}, {68, 12}, {70, 12}, {72, 12}, {74, 12}, {76, 12}, {78, 12}, {80, 13}, {82, 13}, {84, 13}, {86, 13}, {88, 13}, {90, 14}, {92, 15}, {94, 14}, {96, 14}}},
  {"3.9", python::LineTableFormat::kLnotab, 2,
   std::string("\x00\x01\x08\x01\x08\x01\x0a\x02\x04\x01\x0c\x01\x0a\x01\x02\x01\x0c\x01\x0c\x01\x0a\x01\x02\x01\x02\xff", 26),
   {{0, 3}, {2, 3}, {4, 3}, {6, 3}, {8, 4}, {10, 4}, {12, 4}, {14, 4}, {16, 5}, {18, 5}, {20, 5}, {22, 5}, {24, 5}, {26, 7}, {28, 7}, {30, 8}, {32, 8}, {34, 8}, {36, 8}, {38, 8}, {40, 8}, {42, 9}, {44, 9}, {46, 9}, {48, 9}, {50, 9}, {52, 10}, {54, 11}, {56, 11}, {58, 11}, {60, 11}, {62, 11}, {64, 11}, {66, 12}, {68, 12}, {70, 12}, {72, 12}, {74, 12}, {76, 12}, {78, 13}, {80, 13}, {82, 13}, {84, 13}, {86, 13}, {88, 14}, {90, 15}, {92, 14}, {94, 14}}},
  {"3.10", python::LineTableFormat::kLinetable310, 2,
   std::string("\x08\x01\x08\x01\x0a\x01\x04\x02\x0c\x01\x0a\x01\x02\x01\x0a\x01\x02\x03\x02\x01\x04\xff\x0c\xfe\x06\x01\x02\x01\x02\x01\x04\xff\x02\xfe", 34),
   {{0, 3}, {2, 3}, {4, 3}, {6, 3}, {8, 4}, {10, 4}, {12, 4}, {14, 4}, {16, 5}, {18, 5}, {20, 5}, {22, 5}, {24, 5}, {26, 7}, {28, 7}, {30, 8}, {32, 8}, {34, 8}, {36, 8}, {38, 8}, {40, 8}, {42, 9}, {44, 9}, {46, 9}, {48, 9}, {50, 9}, {52, 10}, {54, 11}, {56, 11}, {58, 11}, {60, 11}, {62, 11}, {64, 14}, {66, 15}, {68, 14}, {70, 14}, {72, 12}, {74, 12}, {76, 12}, {78, 12}, {80, 12}, {82, 12}, {84, 13}, {86, 13}, {88, 13}, {90, 14}, {92, 15}, {94, 14}, {96, 14}, {98, 12}}},
  {"3.11", python::LineTableFormat::kLocations, 2,
   std::string("\x80\x00\xd8\x08\x09\x88\x41\x89\x05\x80\x41\xd8\x07\x08\x88\x31\x82\x75\x80\x75\xd8\x0c\x0d\x90\x01\x89\x45\x88\x01\x88\x01\xe0\x0c\x0d\x88\x01\xdd\x0d\x12\x90\x31\x89\x58\x8c\x58\xf0\x00\x01\x05\x0f\xf0\x00\x01\x05\x0f\x88\x01\xd8\x08\x09\x88\x51\x89\x06\x88\x01\x88\x01\xf0\x02\x03\x05\x0e\xd8\x0c\x0d\x90\x01\x89\x45\x88\x01\x88\x01\xf8\xdd\x0b\x1c\xf0\x00\x01\x05\x0e\xf0\x00\x01\x05\x0e\xf0\x00\x01\x05\x0e\xd8\x0c\x0d\x88\x01\x88\x01\x88\x01\xf0\x03\x01\x05\x0e\xf8\xf8\xf8\xe0\x0c\x0d\xd8\x0c\x0d\xf1\x03\x01\x0d\x0e\xf0\x00\x01\x05\x0f", 136),
   {{0, 2}, {2, 3}, {4, 3}, {6, 3}, {8, 3}, {10, 3}, {12, 4}, {14, 4}, {16, 4}, {18, 4}, {20, 4}, {22, 4}, {24, 5}, {26, 5}, {28, 5}, {30, 5}, {32, 5}, {34, 5}, {36, 7}, {38, 7}, {40, 8}, {42, 8}, {44, 8}, {46, 8}, {48, 8}, {50, 8}, {52, 8}, {54, 8}, {56, 8}, {58, 8}, {60, 8}, {62, 8}, {64, 8}, {66, 8}, {68, 8}, {70, 8}, {72, 8}, {74, 9}, {76, 9}, {78, 9}, {80, 9}, {82, 9}, {84, 9}, {86, 10}, {88, 11}, {90, 11}, {92, 11}, {94, 11}, {96, 11}, {98, 11}, {100, 11}, {102, 12}, {104, 12}, {106, 12}, {108, 12}, {110, 12}, {112, 12}, {114, 12}, {116, 12}, {118, 12}, {120, 13}, {122, 13}, {124, 13}, {126, 13}, {128, 12}, {130, 12}, {132, 12}, {134, 12}, {136, 14}, {138, 15}, {140, 14}, {142, 14}, {144, 14}}},
  {"3.12", python::LineTableFormat::kLocations, 2,
   std::string("\x80\x00\xd8\x08\x09\x88\x41\x89\x05\x80\x41\xd8\x07\x08\x88\x31\x82\x75\xd8\x0c\x0d\x90\x01\x89\x45\x89\x01\xe0\x0c\x0d\x88\x01\xdc\x0d\x12\x90\x31\x8b\x58\xf2\x00\x01\x05\x0f\x88\x01\xd8\x08\x09\x88\x51\x89\x06\x89\x01\xf0\x03\x01\x05\x0f\xf0\x04\x03\x05\x0e\xd8\x0c\x0d\x90\x01\x89\x45\x88\x01\xf0\x06\x00\x0d\x0e\xd8\x0c\x0d\xf1\x03\x01\x0d\x0e\xf0\x00\x01\x05\x0f\xf8\xf4\x05\x00\x0c\x1d\xf2\x00\x01\x05\x0e\xd8\x0c\x0d\x89\x01\xd8\x0c\x0d\xd8\x0c\x0d\xf1\x03\x01\x0d\x0e\xf0\x00\x01\x05\x0f\xf0\x05\x01\x05\x0e\xfa", 130),
   {{0, 2}, {2, 3}, {4, 3}, {6, 3}, {8, 3}, {10, 3}, {12, 4}, {14, 4}, {16, 4}, {18, 4}, {20, 4}, {22, 5}, {24, 5}, {26, 5}, {28, 5}, {30, 5}, {32, 5}, {34, 7}, {36, 7}, {38, 8}, {40, 8}, {42, 8}, {44, 8}, {46, 8}, {48, 8}, {50, 8}, {52, 8}, {54, 8}, {56, 8}, {58, 8}, {60, 8}, {62, 8}, {64, 8}, {66, 9}, {68, 9}, {70, 9}, {72, 9}, {74, 9}, {76, 9}, {78, 8}, {80, 10}, {82, 11}, {84, 11}, {86, 11}, {88, 11}, {90, 11}, {92, 14}, {94, 15}, {96, 14}, {98, 14}, {100, 14}, {102, 14}, {104, 12}, {106, 12}, {108, 12}, {110, 12}, {112, 12}, {114, 12}, {116, 12}, {118, 12}, {120, 13}, {122, 13}, {124, 13}, {126, 14}, {128, 15}, {130, 14}, {132, 14}, {134, 14}, {136, 12}, {138, 12}, {140, 12}, {142, 12}}},
  {"3.13", python::LineTableFormat::kLocations, 2,
   std::string("\x80\x00\xd8\x08\x09\x88\x41\x89\x05\x80\x41\xd8\x07\x08\x88\x31\x83\x75\xd8\x0c\x0d\x90\x01\x89\x45\x89\x01\xe0\x0c\x0d\x88\x01\xdc\x0d\x12\x90\x31\x8e\x58\x88\x01\xd8\x08\x09\x89\x06\x8a\x01\xf1\x03\x00\x0e\x16\xf0\x04\x03\x05\x0e\xd8\x0c\x0d\x90\x01\x89\x45\x88\x01\xf0\x06\x00\x0d\x0e\xd8\x0c\x0d\xf1\x03\x01\x0d\x0e\xf0\x00\x01\x05\x0f\xf8\xf4\x05\x00\x0c\x1d\xf3\x00\x01\x05\x0e\xd8\x0c\x0d\x89\x01\xd8\x0c\x0d\xd8\x0c\x0d\xf1\x03\x01\x0d\x0e\xf0\x00\x01\x05\x0f\xf0\x05\x01\x05\x0e\xfa", 123),
   {{0, 2}, {2, 3}, {4, 3}, {6, 3}, {8, 3}, {10, 3}, {12, 4}, {14, 4}, {16, 4}, {18, 4}, {20, 4}, {22, 4}, {24, 5}, {26, 5}, {28, 5}, {30, 5}, {32, 5}, {34, 5}, {36, 7}, {38, 7}, {40, 8}, {42, 8}, {44, 8}, {46, 8}, {48, 8}, {50, 8}, {52, 8}, {54, 8}, {56, 8}, {58, 8}, {60, 8}, {62, 8}, {64, 8}, {66, 8}, {68, 9}, {70, 9}, {72, 9}, {74, 9}, {76, 9}, {78, 9}, {80, 8}, {82, 8}, {84, 10}, {86, 11}, {88, 11}, {90, 11}, {92, 11}, {94, 11}, {96, 14}, {98, 15}, {100, 14}, {102, 14}, {104, 14}, {106, 14}, {108, 12}, {110, 12}, {112, 12}, {114, 12}, {116, 12}, {118, 12}, {120, 12}, {122, 12}, {124, 12}, {126, 13}, {128, 13}, {130, 13}, {132, 14}, {134, 15}, {136, 14}, {138, 14}, {140, 14}, {142, 12}, {144, 12}, {146, 12}, {148, 12}}},
  {"3.14", python::LineTableFormat::kLocations, 2,
   std::string("\x80\x00\xd8\x08\x09\x88\x41\x8d\x05\x80\x41\xd8\x07\x08\x88\x31\x84\x75\xd8\x0c\x0d\x90\x01\x8d\x45\x89\x01\xe0\x0c\x0d\x88\x01\xdc\x0d\x12\x90\x31\x8e\x58\x88\x01\xd8\x08\x09\x8d\x06\x8a\x01\xf1\x03\x00\x0e\x16\xf0\x04\x03\x05\x0e\xd8\x0c\x0d\x90\x01\x8d\x45\x88\x01\xf0\x06\x00\x0d\x0e\xd8\x0c\x0d\xf5\x03\x01\x0d\x0e\xf0\x00\x01\x05\x0f\xf8\xf4\x05\x00\x0c\x1d\xf4\x00\x01\x05\x0e\xd8\x0c\x0d\x89\x01\xd8\x0c\x0d\xd8\x0c\x0d\xf5\x03\x01\x0d\x0e\xf0\x00\x01\x05\x0f\xf0\x05\x01\x05\x0e\xfa", 123),
   {{0, 2}, {2, 3}, {4, 3}, {6, 3}, {8, 3}, {10, 3}, {12, 3}, {14, 3}, {16, 3}, {18, 3}, {20, 4}, {22, 4}, {24, 4}, {26, 4}, {28, 4}, {30, 4}, {32, 4}, {34, 5}, {36, 5}, {38, 5}, {40, 5}, {42, 5}, {44, 5}, {46, 5}, {48, 5}, {50, 5}, {52, 5}, {54, 7}, {56, 7}, {58, 8}, {60, 8}, {62, 8}, {64, 8}, {66, 8}, {68, 8}, {70, 8}, {72, 8}, {74, 8}, {76, 8}, {78, 8}, {80, 8}, {82, 8}, {84, 8}, {86, 9}, {88, 9}, {90, 9}, {92, 9}, {94, 9}, {96, 9}, {98, 9}, {100, 9}, {102, 9}, {104, 9}, {106, 8}, {108, 8}, {110, 10}, {112, 11}, {114, 11}, {116, 11}, {118, 11}, {120, 11}, {122, 11}, {124, 11}, {126, 11}, {128, 11}, {130, 14}, {132, 15}, {134, 14}, {136, 14}, {138, 14}, {140, 14}, {142, 14}, {144, 14}, {146, 14}, {148, 14}, {150, 12}, {152, 12}, {154, 12}, {156, 12}, {158, 12}, {160, 12}, {162, 12}, {164, 12}, {166, 12}, {168, 12}, {170, 13}, {172, 13}, {174, 13}, {176, 14}, {178, 15}, {180, 14}, {182, 14}, {184, 14}, {186, 14}, {188, 14}, {190, 14}, {192, 14}, {194, 12}, {196, 12}, {198, 12}, {200, 12}}},
  {"3.15", python::LineTableFormat::kLocations, 2,
   std::string("\x81\x00\xd8\x08\x09\x88\x41\x8d\x05\x80\x41\xd8\x07\x08\x88\x31\x84\x75\xd8\x0c\x0d\x90\x01\x8d\x45\x89\x01\xe0\x0c\x0d\x88\x01\xdc\x0d\x12\x90\x31\x8f\x58\x88\x01\xd8\x08\x09\x8d\x06\x8a\x01\xf1\x03\x00\x0e\x16\xf0\x04\x03\x05\x0e\xd8\x0c\x0d\x90\x01\x8d\x45\x88\x01\xf0\x06\x00\x0d\x0e\xd8\x0c\x0d\xf5\x03\x01\x0d\x0e\xf0\x00\x01\x05\x0f\xf8\xf4\x05\x00\x0c\x1d\xf4\x00\x01\x05\x0e\xd8\x0c\x0d\x89\x01\xd8\x0c\x0d\xd8\x0c\x0d\xf5\x03\x01\x0d\x0e\xf0\x00\x01\x05\x0f\xf0\x05\x01\x05\x0e\xfa", 123),
   {{0, 2}, {2, 2}, {4, 3}, {6, 3}, {8, 3}, {10, 3}, {12, 3}, {14, 3}, {16, 3}, {18, 3}, {20, 3}, {22, 4}, {24, 4}, {26, 4}, {28, 4}, {30, 4}, {32, 4}, {34, 4}, {36, 5}, {38, 5}, {40, 5}, {42, 5}, {44, 5}, {46, 5}, {48, 5}, {50, 5}, {52, 5}, {54, 5}, {56, 7}, {58, 7}, {60, 8}, {62, 8}, {64, 8}, {66, 8}, {68, 8}, {70, 8}, {72, 8}, {74, 8}, {76, 8}, {78, 8}, {80, 8}, {82, 8}, {84, 8}, {86, 8}, {88, 8}, {90, 9}, {92, 9}, {94, 9}, {96, 9}, {98, 9}, {100, 9}, {102, 9}, {104, 9}, {106, 9}, {108, 9}, {110, 8}, {112, 8}, {114, 10}, {116, 11}, {118, 11}, {120, 11}, {122, 11}, {124, 11}, {126, 11}, {128, 11}, {130, 11}, {132, 11}, {134, 14}, {136, 15}, {138, 14}, {140, 14}, {142, 14}, {144, 14}, {146, 14}, {148, 14}, {150, 14}, {152, 14}, {154, 12}, {156, 12}, {158, 12}, {160, 12}, {162, 12}, {164, 12}, {166, 12}, {168, 12}, {170, 12}, {172, 12}, {174, 13}, {176, 13}, {178, 13}, {180, 14}, {182, 15}, {184, 14}, {186, 14}, {188, 14}, {190, 14}, {192, 14}, {194, 14}, {196, 14}, {198, 12}, {200, 12}, {202, 12}, {204, 12}}},
  };
  return all;
}

}  // namespace

TEST_CASE("every instruction of a real function maps to the line CPython reports", "[lines]") {
  for (const auto& f : fixtures()) {
    INFO("Python " << f.version);
    auto ranges = python::decode_line_table(f.format, f.table, f.first_line);
    REQUIRE_FALSE(ranges.empty());
    for (auto [offset, line] : f.offset_lines) {
      INFO("offset " << offset);
      CHECK(python::line_for_offset(ranges, offset, f.first_line) == line);
    }
  }
}

TEST_CASE("a frame that has not started reports its def line", "[lines]") {
  const auto& f = fixtures().front();
  auto ranges = python::decode_line_table(f.format, f.table, f.first_line);
  CHECK(python::line_for_offset(ranges, -1, f.first_line) == f.first_line);
}

TEST_CASE("truncated or garbage line tables never read past their end", "[lines]") {
  for (const auto& f : fixtures()) {
    for (size_t cut = 0; cut < f.table.size(); ++cut) {
      auto ranges = python::decode_line_table(f.format, f.table.substr(0, cut), f.first_line);
      for (size_t i = 1; i < ranges.size(); ++i) CHECK(ranges[i].start >= ranges[i - 1].start);
      (void)python::line_for_offset(ranges, 10, f.first_line);
    }
  }
  std::string noise(300, '\xff');
  for (auto format : {python::LineTableFormat::kLnotab, python::LineTableFormat::kLinetable310,
                      python::LineTableFormat::kLocations}) {
    auto ranges = python::decode_line_table(format, noise, 1);
    (void)python::line_for_offset(ranges, 1000000, 1);
  }
}

TEST_CASE("3.11 location table: long form, no-column form and no-location entries", "[lines]") {
  // Hand-made entries: code 14 (long: line delta +3, 2 code units), code 13 (no columns: delta -1,
  // 1 unit), code 15 (no location, 1 unit), code 10 (one line, delta 0, 1 unit).
  std::string t;
  t += static_cast<char>(0x80 | (14 << 3) | 1);
  t += static_cast<char>(6);  // svarint +3
  t += static_cast<char>(0);  // end line delta
  t += static_cast<char>(1);  // column + 1
  t += static_cast<char>(5);  // end column + 1
  t += static_cast<char>(0x80 | (13 << 3) | 0);
  t += static_cast<char>(3);  // svarint -1
  t += static_cast<char>(0x80 | (15 << 3) | 0);
  t += static_cast<char>(0x80 | (10 << 3) | 0);
  t += static_cast<char>(0);
  t += static_cast<char>(4);
  auto ranges = python::decode_line_table(python::LineTableFormat::kLocations, t, 100);
  CHECK(python::line_for_offset(ranges, 0, 100) == 103);
  CHECK(python::line_for_offset(ranges, 2, 100) == 103);
  CHECK(python::line_for_offset(ranges, 4, 100) == 102);
  CHECK(python::line_for_offset(ranges, 6, 100) == 102);  // no location: the line before
  CHECK(python::line_for_offset(ranges, 8, 100) == 102);
}
