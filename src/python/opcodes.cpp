// Which opcodes jump backwards, per CPython version: the facts needed to tell whether a function
// has a loop. Within one call of a function without loops the executing instruction only moves
// forward, which lets the entry trigger tell two calls apart (record/trigger.cpp).
//
// The tables are the exact output of tests/layout/opcode_tables.py run with each interpreter; the
// opcode test re-runs it wherever an interpreter is installed and compares.
#include <algorithm>
#include <charconv>
#include <map>
#include <vector>

#include "swprof/python.h"

namespace swprof::python {

namespace {

constexpr const char* kTables[] = {
    // 3.8.18
    "version 3.8\n"
    "backward \n"
    "absolute 111,112,113,114,115\n"
    "extended_arg 144\n"
    "units_per_arg 1\n"
    "caches \n"
    "deopt \n"
    "unknown \n"
    ,
    // 3.9.18
    "version 3.9\n"
    "backward \n"
    "absolute 111,112,113,114,115,121\n"
    "extended_arg 144\n"
    "units_per_arg 1\n"
    "caches \n"
    "deopt \n"
    "unknown \n"
    ,
    // 3.10.13
    "version 3.10\n"
    "backward \n"
    "absolute 111,112,113,114,115,121\n"
    "extended_arg 144\n"
    "units_per_arg 2\n"
    "caches \n"
    "deopt \n"
    "unknown \n"
    ,
    // 3.11.7
    "version 3.11\n"
    "backward 134,140,173,174,175,176\n"
    "absolute \n"
    "extended_arg 144\n"
    "units_per_arg 1\n"
    "caches 25:4,60:1,92:1,95:4,106:4,107:2,116:5,122:1,160:10,166:1,171:4\n"
    "deopt 3:122,4:122,5:122,6:122,7:122,8:122,13:122,14:122,16:122,17:25,18:25,19:25,20:25,21:25,22:171,23:171,24:171,26:107,27:107,28:107,29:107,34:144,38:140,39:106,40:106,41:106,42:106,43:106,44:100,45:124,46:124,47:116,48:116,55:116,56:160,57:160,58:160,59:160,62:160,63:160,64:166,65:166,66:166,67:166,72:166,73:166,76:166,77:166,78:166,79:166,80:166,81:166,113:166,121:166,127:166,141:166,143:166,150:151,153:95,154:95,158:95,159:95,161:125,167:125,168:60,169:60,170:60,177:92,178:92,179:92,180:92\n"
    "unknown \n"
    ,
    // 3.12.1
    "version 3.12\n"
    "backward 134,140\n"
    "absolute \n"
    "extended_arg 144\n"
    "units_per_arg 1\n"
    "caches 25:1,60:1,92:1,93:1,95:4,106:9,107:1,116:4,122:1,123:1,141:1,171:3\n"
    "deopt 6:122,7:122,8:122,10:122,13:122,14:122,16:122,18:122,19:25,20:25,21:25,22:25,23:171,24:171,28:171,29:171,34:171,38:171,39:171,40:171,41:171,42:171,43:171,44:171,45:171,46:171,47:171,48:171,56:171,57:107,58:107,59:107,62:93,63:93,64:93,65:93,66:141,67:141,70:106,72:106,73:106,76:106,77:106,78:106,79:106,80:106,81:106,82:106,84:100,86:124,88:124,111:116,112:116,113:95,148:95,153:95,154:125,158:125,159:60,160:60,161:92,166:92,167:92,168:123,237:141,238:129,239:128,240:151,241:171,242:83,243:150,244:142,245:110,246:140,247:121,248:93,249:114,250:115,251:4,252:5\n"
    "unknown 253,254\n"
    ,
    // 3.13.0
    "version 3.13\n"
    "backward 77,78\n"
    "absolute \n"
    "extended_arg 71\n"
    "units_per_arg 1\n"
    "caches 5:1,39:1,40:3,45:1,53:3,58:1,59:1,72:1,77:1,82:9,91:4,93:1,97:1,98:1,99:1,100:1,104:1,108:4,117:1\n"
    "deopt 3:45,150:45,151:45,152:45,153:45,154:45,155:45,156:45,157:5,158:5,159:5,160:5,161:5,162:53,163:53,164:53,165:53,166:53,167:53,168:53,169:53,170:53,171:53,172:53,173:53,174:53,175:53,176:53,177:53,178:53,179:53,180:53,181:53,182:58,183:58,184:58,185:59,186:59,187:72,188:72,189:72,190:72,191:82,192:82,193:82,194:82,195:82,196:82,197:82,198:82,199:82,200:82,201:82,202:82,203:91,204:91,205:93,206:93,207:149,208:104,209:108,210:108,211:108,212:39,213:39,214:40,215:40,216:40,217:40,218:40,219:40,220:117,221:117,222:117,236:149,237:11,238:12,239:36,240:103,241:118,242:93,243:72,244:53,245:57,246:54,248:79,249:77,250:100,251:97,252:98,253:99\n"
    "unknown 247,254\n"
    ,
    // 3.14.10
    "version 3.14\n"
    "backward 75,76\n"
    "absolute \n"
    "extended_arg 69\n"
    "units_per_arg 1\n"
    "caches 38:1,39:3,44:5,52:3,55:3,56:1,57:1,70:1,75:1,80:9,92:4,96:1,100:1,101:1,102:1,103:1,106:1,110:4,119:1\n"
    "deopt 3:44,129:44,130:44,131:44,132:44,133:44,134:44,135:44,136:44,137:44,138:44,139:44,140:44,141:44,142:44,143:52,144:52,145:52,146:52,147:52,148:52,149:52,150:52,151:55,152:55,153:55,154:52,155:52,156:52,157:52,158:52,159:52,160:52,161:52,162:52,163:52,164:52,165:52,166:56,167:56,168:56,169:57,170:57,171:70,172:70,173:70,174:70,175:75,176:75,177:80,178:80,179:80,180:80,181:80,182:80,183:80,184:80,185:80,186:80,187:80,188:80,189:80,190:82,191:82,192:92,193:92,194:96,195:96,196:128,197:106,198:110,199:110,200:110,201:38,202:38,203:39,204:39,205:39,206:39,207:39,208:39,209:119,210:119,211:119,234:9,235:30,236:10,237:70,239:77,240:28,241:103,242:100,243:101,244:102,245:128,246:35,247:120,248:68,249:96,250:52,251:55,252:4,253:75\n"
    "unknown 238,254\n"
    ,
    // 3.15.2
    "version 3.15\n"
    "backward 74,75\n"
    "absolute \n"
    "extended_arg 67\n"
    "units_per_arg 1\n"
    "caches 4:1,36:1,37:3,42:5,50:3,53:3,54:1,55:1,68:1,70:1,74:1,79:9,91:4,95:1,99:1,100:1,101:1,102:1,105:1,109:4,118:1,128:1\n"
    "deopt 3:42,129:42,130:42,131:42,132:42,133:42,134:42,135:42,136:42,137:42,138:42,139:42,140:42,141:42,142:42,143:42,144:50,145:50,146:50,147:50,148:50,149:50,150:50,151:4,152:4,153:50,154:53,155:53,156:53,157:50,158:50,159:50,160:50,161:50,162:50,163:50,164:50,165:50,166:50,167:50,168:50,169:54,170:54,171:54,172:55,173:55,174:68,175:68,176:68,177:68,178:68,179:70,180:70,181:74,182:74,183:79,184:79,185:79,186:79,187:79,188:79,189:79,190:79,191:79,192:79,193:79,194:79,195:79,196:91,197:91,198:95,199:95,200:128,201:128,202:105,203:105,204:105,205:109,206:109,207:109,208:36,209:36,210:37,211:37,212:37,213:37,214:37,215:37,216:118,217:118,218:118,233:9,234:28,235:10,236:68,238:76,239:26,240:102,241:99,242:100,243:101,244:128,245:33,246:119,247:66,248:95,249:50,250:53,251:4,252:74\n"
    "unknown 237,253\n"
    ,
};

struct OpcodeTable {
  int minor = 0;
  std::vector<uint8_t> backward, absolute, unknown;
  uint8_t extended_arg = 0;
  int units_per_arg = 1;
  uint8_t caches[256] = {};
  uint8_t deopt[256];  // specialized/instrumented -> base; identity otherwise
};

std::vector<int> numbers(std::string_view list) {
  std::vector<int> out;
  for (size_t at = 0; at < list.size();) {
    size_t end = list.find_first_of(",:", at);
    if (end == std::string_view::npos) end = list.size();
    int v = 0;
    std::from_chars(list.data() + at, list.data() + end, v);
    out.push_back(v);
    at = end + 1;
  }
  return out;
}

OpcodeTable parse(std::string_view text) {
  OpcodeTable t;
  for (int i = 0; i < 256; ++i) t.deopt[i] = static_cast<uint8_t>(i);
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    size_t space = line.find(' ');
    std::string_view key = line.substr(0, space), value = space == std::string_view::npos ? "" : line.substr(space + 1);
    auto v = numbers(value);
    if (key == "version") {
      size_t dot = value.find('.');
      if (dot != std::string_view::npos)
        std::from_chars(value.data() + dot + 1, value.data() + value.size(), t.minor);
    }
    else if (key == "backward") t.backward.assign(v.begin(), v.end());
    else if (key == "absolute") t.absolute.assign(v.begin(), v.end());
    else if (key == "unknown") t.unknown.assign(v.begin(), v.end());
    else if (key == "extended_arg" && !v.empty()) t.extended_arg = static_cast<uint8_t>(v[0]);
    else if (key == "units_per_arg" && !v.empty()) t.units_per_arg = v[0];
    else if (key == "caches") for (size_t i = 0; i + 1 < v.size(); i += 2) t.caches[v[i] & 255] = static_cast<uint8_t>(v[i + 1]);
    else if (key == "deopt") for (size_t i = 0; i + 1 < v.size(); i += 2) t.deopt[v[i] & 255] = static_cast<uint8_t>(v[i + 1]);
  }
  return t;
}

const OpcodeTable* table_for(int minor) {
  static const std::map<int, OpcodeTable> tables = [] {
    std::map<int, OpcodeTable> m;
    for (const char* text : kTables) {
      OpcodeTable t = parse(text);
      m[t.minor] = t;
    }
    return m;
  }();
  auto it = tables.find(minor);
  return it == tables.end() ? nullptr : &it->second;
}

bool contains(const std::vector<uint8_t>& v, uint8_t op) { return std::find(v.begin(), v.end(), op) != v.end(); }

}  // namespace

std::string_view opcode_table_text(int minor) {
  for (const char* text : kTables)
    if (parse(text).minor == minor) return text;
  return {};
}

std::optional<bool> has_backward_jump(int minor, std::string_view bytecode) {
  const OpcodeTable* t = table_for(minor);
  if (!t) return std::nullopt;
  const auto* code = reinterpret_cast<const uint8_t*>(bytecode.data());
  size_t units = bytecode.size() / 2;
  if (minor <= 10) {
    // Absolute jumps to an earlier instruction are loops (3.10 counts targets in code units).
    uint32_t extended = 0;
    for (size_t i = 0; i < units; ++i) {
      uint8_t op = code[2 * i];
      uint32_t arg = code[2 * i + 1] | (extended << 8);
      if (op == t->extended_arg) {
        extended = arg;
        continue;
      }
      extended = 0;
      if (contains(t->absolute, op) && uint64_t(arg) * t->units_per_arg <= 2 * i) return true;
    }
    return false;
  }
  // 3.11+: the adaptive bytecode holds specialized opcodes followed by inline cache entries.
  for (size_t i = 0; i < units;) {
    uint8_t op = code[2 * i];
    if (contains(t->unknown, op)) return std::nullopt;  // instrumented: the real opcode is elsewhere
    uint8_t base = t->deopt[op];
    if (contains(t->backward, base)) return true;
    i += 1 + t->caches[base];
  }
  return false;
}

}  // namespace swprof::python
