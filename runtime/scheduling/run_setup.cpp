#include "runtime/scheduling/run_setup.hpp"

namespace crew {

const char* to_string(backend_kind x) noexcept {
  switch (x) {
    case backend_kind::command:
      return "child-process";
    case backend_kind::scaffold:
      return "scaffold";
    case backend_kind::sim:
      return "sim";
  }
  return "unknown";
}

} // namespace crew
