// PCRE2 wrapper with Oniguruma-compatible escapes and match iteration (see regex.h).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "data/tokenizer/regex.h"

#include "common/error.h"
#include "data/tokenizer/unicode.h"

#include <pcre2.h>

namespace mp::tok {

namespace {

// White_Space, as Oniguruma's \s; PCRE2's UCP \s also takes U+180E.
const char* kSpaceClass = "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";
// Oniguruma's Unicode \w: letters, marks, decimal digits, letter numbers, connector punctuation,
// joiners (PCRE2's UCP \w is letters, numbers and underscore).
const char* kWordClass = "\\p{L}\\p{M}\\p{Nd}\\p{Nl}\\p{Pc}\\x{200C}\\x{200D}";
const char* kHexClass = "0-9A-Fa-f";

}  // namespace

std::string onig_to_pcre2(const std::string& p) {
  std::string out;
  out.reserve(p.size() + 16);
  int class_depth = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char e = p[i + 1];
      const char* cls = e == 's' || e == 'S' ? kSpaceClass : e == 'w' || e == 'W' ? kWordClass
                        : e == 'h' || e == 'H' ? kHexClass : nullptr;
      bool negated = e == 'S' || e == 'W' || e == 'H';
      if (cls && class_depth == 0) {
        out += negated ? "[^" : "[";
        out += cls;
        out += "]";
      } else if (cls && !negated) {
        out += cls;
      } else {
        out += c;
        out += e;
      }
      ++i;
      continue;
    }
    if (c == '[') {
      if (class_depth > 0 && i + 1 < p.size() && p[i + 1] == ':') {  // POSIX [:name:]
        size_t end = p.find(":]", i + 2);
        if (end != std::string::npos) {
          out.append(p, i, end + 2 - i);
          i = end + 1;
          continue;
        }
      }
      ++class_depth;
      out += c;
      // A ']' right after '[' or '[^' is a literal member.
      if (i + 1 < p.size() && p[i + 1] == '^') { out += '^'; ++i; }
      if (i + 1 < p.size() && p[i + 1] == ']') { out += ']'; ++i; }
      continue;
    }
    if (c == ']' && class_depth > 0) --class_depth;
    out += c;
  }
  return out;
}

struct Regex::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
};

namespace {

// Per-thread match state: match data sized for one group and a JIT stack large enough for
// long runs (the default 32 KiB machine-stack area is too small for \s+ over a megabyte).
struct ThreadMatchState {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* stack = nullptr;
  ThreadMatchState() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
    if (context && stack) pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~ThreadMatchState() {
    if (data) pcre2_match_data_free(data);
    if (context) pcre2_match_context_free(context);
    if (stack) pcre2_jit_stack_free(stack);
  }
};

ThreadMatchState& thread_state() {
  thread_local ThreadMatchState state;
  return state;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  int n = pcre2_get_error_message(code, buf, sizeof buf);
  return n < 0 ? "unknown PCRE2 error" : std::string(reinterpret_cast<const char*>(buf));
}

}  // namespace

Regex::Regex(const std::string& pattern, const std::string& what) : impl_(std::make_unique<Impl>()) {
  const std::string translated = onig_to_pcre2(pattern);
  pcre2_compile_context* cc = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &err, &err_offset, cc);
  pcre2_compile_context_free(cc);
  if (!impl_->code)
    fail_input("{}: invalid regular expression {}: {} (at offset {})", what, quote_for_message(pattern), pcre2_message(err),
               static_cast<size_t>(err_offset));
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

std::unique_ptr<Regex> Regex::literal(const std::string& literal, const std::string& what) {
  std::string p;
  for (char c : literal) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x80 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
      p += fmt::format("\\x{{{:x}}}", u);
    } else {
      p += c;
    }
  }
  return std::make_unique<Regex>(p, what);
}

Regex::~Regex() {
  if (impl_ && impl_->code) pcre2_code_free(impl_->code);
}

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  out.clear();
  ThreadMatchState& st = thread_state();
  if (!st.data) fail_runtime("PCRE2: out of memory creating match data");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  const size_t n = text.size();
  size_t pos = 0;
  bool have_last = false;
  size_t last_end = 0;
  while (pos <= n) {
    int rc = pcre2_match(impl_->code, subject, n, pos, PCRE2_NO_UTF_CHECK, st.data, st.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) fail_runtime("PCRE2 match failed: {}", pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.data);
    size_t s = ov[0], e = ov[1];
    if (s == e && have_last && e == last_end) {
      // Skip an empty match at the end of the previous one: resume a character later.
      if (pos >= n) break;
      pos += utf8_length_of_lead(static_cast<unsigned char>(text[pos]));
      continue;
    }
    out.emplace_back(s, e);
    have_last = true;
    last_end = e;
    pos = e;
  }
}

}  // namespace mp::tok
