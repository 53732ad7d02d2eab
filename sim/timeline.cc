// The timeline recorder and its page: what one run did, lane by lane (the run, the node, the
// network, the proxy's server connections, every client session), on an axis of simulated
// milliseconds. Positions are percentages of the track, so zooming is one CSS width.
#include "sim/timeline.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>
#include <utility>

#include "absl/strings/str_format.h"
#include "core/base/strings.h"
#include "io_sim/prng.h"

namespace switchyard::sim {
namespace {

constexpr int kTrackWidthPx = 1600;  // the track's width at zoom 1
constexpr int kTickSpacingPx = 100;
constexpr size_t kServerRowsMax = 100;  // beyond this, server connections share rows
constexpr std::string_view kKindNames[] = {
    "client sessions", "requests",       "client events", "server connection events",
    "node events",     "network faults", "phase marks",   "violations"};

uint64_t SessionKey(uint32_t client, uint32_t session) {
  return (uint64_t{client} << 32) | session;
}

std::string SessionName(uint32_t client, uint32_t session) {
  return Cat("c", client, ".s", session);
}

// At most kTextBytesMax bytes, never cutting a UTF-8 character; control characters but the
// newline become spaces.
std::string Clip(std::string_view text) {
  size_t n = text.size();
  const bool cut = n > TimelineRecorder::kTextBytesMax;
  if (cut) {
    n = TimelineRecorder::kTextBytesMax;
    while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  }
  std::string out;
  out.reserve(n + 3);
  for (char c : text.substr(0, n)) {
    const bool control = static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
    out.push_back(control && c != '\n' ? ' ' : c);
  }
  if (cut) out += "…";
  return out;
}

template <typename Int>
bool ParseInt(std::string_view text, Int* out) {
  const char* end = text.data() + text.size();
  auto [ptr, error] = std::from_chars(text.data(), end, *out);
  return error == std::errc() && ptr == end && !text.empty();
}

// The value of ` key=` in a trace line: up to the next space, or the rest of the line for
// `why` (always last, and free text).
std::string_view Field(std::string_view line, std::string_view key) {
  const std::string needle = Cat(" ", key, "=");
  size_t at = line.find(needle);
  if (at == std::string_view::npos) return {};
  at += needle.size();
  if (key == "why") return line.substr(at);
  const size_t end = line.find(' ', at);
  return line.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
}

std::string Ms(int64_t us) { return absl::StrFormat("%.3f ms", static_cast<double>(us) / 1e3); }

double Percent(int64_t span_us, int64_t us) {
  const int64_t clamped = std::clamp<int64_t>(us, 0, span_us);
  return 100.0 * static_cast<double>(clamped) / static_cast<double>(span_us);
}

// 1, 2 or 5 times a power of ten, at least `x`.
double NiceStep(double x) {
  if (!(x > 0)) return 1;
  const double power = std::pow(10.0, std::floor(std::log10(x)));
  const double m = x / power;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * power;
}

void LaneOpen(std::string& out, std::string_view label, std::string_view tip,
              std::string_view row_class = "") {
  out += Cat("<div class=\"row", row_class.empty() ? "" : " ", row_class,
             "\"><div class=\"label\" title=\"", HtmlEscape(tip), "\">", HtmlEscape(label),
             "</div><div class=\"track\">");
}

void LaneClose(std::string& out) { out += "</div></div>\n"; }

void GroupRow(std::string& out, std::string_view label) {
  out += Cat("<div class=\"row group\"><div class=\"label\">", HtmlEscape(label),
             "</div><div class=\"track\"></div></div>\n");
}

// `css` is one of our own class names, never recorded text.
void Bar(std::string& out, int64_t span_us, std::string_view css, int64_t from_us, int64_t to_us,
         std::string_view tip) {
  const double left = Percent(span_us, from_us);
  const double width = std::max(0.0, Percent(span_us, to_us) - left);
  out += Cat("<i class=\"", css, "\" style=\"",
             absl::StrFormat("left:%.4f%%;width:%.4f%%", left, width), "\" title=\"",
             HtmlEscape(tip), "\"></i>");
}

void Marker(std::string& out, int64_t span_us, std::string_view css, int64_t at_us,
            std::string_view tip) {
  out += Cat("<i class=\"m ", css, "\" style=\"",
             absl::StrFormat("left:%.4f%%", Percent(span_us, at_us)), "\" title=\"",
             HtmlEscape(tip), "\"></i>");
}

// "crash" of "crash n1", "failover" of "failover: crash n0".
std::string_view KindOf(std::string_view what) {
  std::string_view kind = what.substr(0, what.find(' '));
  if (!kind.empty() && kind.back() == ':') kind.remove_suffix(1);
  return kind;
}

// The first node a node event names ("n1" of "rebuild n1 as a replica of n0"), or "".
std::string NodeOf(std::string_view what) {
  size_t at = 0;
  while (at < what.size()) {
    const size_t end = std::min(what.find(' ', at), what.size());
    const std::string_view word = what.substr(at, end - at);
    if (word.size() >= 2 && word[0] == 'n' &&
        std::all_of(word.begin() + 1, word.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::string(word);
    }
    at = end + 1;
  }
  return "";
}

std::string_view NodeClass(std::string_view what) {
  if (what == "crash") return "n-crash";
  if (what == "shutdown") return "n-shutdown";
  if (what == "restart") return "n-restart";
  if (what == "pause") return "n-pause";
  if (what == "terminate") return "n-terminate";
  if (what == "slow") return "n-slow";
  if (what == "heal") return "n-heal";
  if (what == "promote" || what == "failover") return "n-failover";
  if (what == "rebuild") return "n-restart";
  return "n-other";
}

std::string_view FaultClass(std::string_view kind) {
  if (kind == "reset") return "f-reset";
  if (kind == "black_hole") return "f-black-hole";
  if (kind == "connect_timeout") return "f-timeout";
  return "f-other";
}

std::string_view EndClass(std::string_view how) {
  if (how == "client_left") return "e-left";
  if (how == "client_aborted") return "e-aborted";
  if (how == "still_open") return "e-open";
  return "e-broken";  // reset, server_closed
}

constexpr std::string_view kStyle = R"css(
body{font:13px/1.45 system-ui,sans-serif;margin:16px;color:#222}
h1{font-size:18px;margin:0 0 4px}h2{font-size:15px;margin:0 0 4px}
code,pre{font:12px ui-monospace,Menlo,Consolas,monospace}
pre{white-space:pre-wrap;background:#f6f6f6;padding:6px;margin:4px 0}
.ok{color:#1b5e20}.failed{color:#b71c1c;font-weight:bold}
.violations{border:2px solid #c62828;background:#fff0f0;padding:6px 10px;margin:8px 0}
.notice{background:#fff8e1;border:1px solid #e0b040;padding:4px 8px}
.legend{margin:8px 0}.legend span{display:inline-block;margin-right:14px;white-space:nowrap}
.legend i{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle}
.controls{margin:6px 0}.controls button{min-width:28px;margin-right:4px}
.scroll{overflow-x:auto;border:1px solid #bbb}
.chart{position:relative;--w:1600px;width:calc(var(--w) + 130px)}
.row{display:flex;border-bottom:1px solid #eee}
.label{position:sticky;left:0;z-index:3;width:122px;flex:none;background:#f7f7f7;
padding:0 4px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;font:11px/16px monospace}
.group .label{font-weight:bold;width:auto;overflow:visible;background:#e8eef6}
.group{background:#e8eef6}.bad .label{color:#c62828;font-weight:bold}
.track{position:relative;width:var(--w);height:16px}
.track i{position:absolute;top:3px;height:10px;min-width:1px}
.track i.m{width:3px;min-width:3px;margin-left:-1px;top:1px;height:14px}
.axis .track{height:20px}.tick{position:absolute;top:0;height:20px;border-left:1px solid #999;
padding-left:2px;font-size:10px;color:#555;white-space:nowrap}
.overlay{position:absolute;top:0;bottom:0;left:130px;width:var(--w);pointer-events:none;z-index:2}
.overlay b{position:absolute;top:0;bottom:0;border-left:1px solid rgba(198,40,40,.7)}
.overlay b.ph{border-left:1px dashed #1565c0}
.life{background:#cfcfcf;top:7px!important;height:2px!important}
.c-ok{background:#43a047}.c-err{background:#e53935}
.c-open{background:repeating-linear-gradient(45deg,#777 0 2px,#ddd 2px 4px)}
.down{background:#37474f}.paused{background:#fb8c00;height:5px!important}
.slow{background:#fdd835;top:8px!important;height:5px!important}
.n-crash{background:#d50000}.n-shutdown{background:#6a1b9a}.n-restart{background:#00c853}
.n-pause{background:#e65100}.n-terminate{background:#795548}.n-slow{background:#c6a700}
.n-heal{background:#1565c0}.n-other{background:#616161}.n-failover{background:#ff1744}
.f-reset{background:#d50000}.f-black-hole{background:#000}.f-timeout{background:#8e24aa}
.f-other{background:#ff6f00}
.s-connecting{background:#90caf9}.s-open{background:#1e88e5}.s-broken{background:#d50000}
.s-mark{background:#ff6f00}.login-failed{background:#ef6c00}.client-event{background:#8e24aa}
.e-left{background:#9e9e9e}.e-aborted{background:#ff6f00}.e-broken{background:#d50000}
.e-open{background:#000}.viol{background:#c62828;width:5px!important;margin-left:-2px!important}
.phase{background:#1565c0}
)css";

constexpr std::string_view kLegend = R"html(<div class="legend">
<span><i class="sw c-ok"></i>request, answered (bar = latency)</span>
<span><i class="sw c-err"></i>answered with an error</span>
<span><i class="sw c-open"></i>never answered</span>
<span><i class="sw e-broken"></i>session broken (reset, closed by the proxy)</span>
<span><i class="sw e-aborted"></i>client dropped it</span>
<span><i class="sw client-event"></i>cancel or slow reading</span>
<span><i class="sw down"></i>node down</span><span><i class="sw paused"></i>node paused</span>
<span><i class="sw slow"></i>node slow</span><span><i class="sw n-crash"></i>crash</span>
<span><i class="sw n-restart"></i>restart</span><span><i class="sw f-reset"></i>network reset</span>
<span><i class="sw f-black-hole"></i>black hole</span><span><i class="sw f-timeout"></i>connect timeout</span>
<span><i class="sw s-open"></i>server connection</span><span><i class="sw viol"></i>violation</span>
<span><i class="sw phase"></i>phase</span>
</div>
<p>Time runs left to right in simulated milliseconds. Hover over any mark for what it was.</p>
)html";

constexpr std::string_view kScript = R"js(
(function(){
var chart=document.getElementById('chart'),axis=document.getElementById('axis');
var scroll=document.getElementById('scroll'),shown=document.getElementById('zoom');
var spanMs=Number(chart.dataset.spanUs)/1000,base=Number(chart.dataset.width),zoom=1;
function nice(x){var p=Math.pow(10,Math.floor(Math.log10(x))),m=x/p;
return (m<=1?1:m<=2?2:m<=5?5:10)*p;}
function ticks(){var step=nice(spanMs*100/(base*zoom)),html='';
for(var i=0;i*step<=spanMs;i++){var t=i*step;html+='<span class="tick" style="left:'+
(100*t/spanMs)+'%">'+Number(t.toPrecision(6))+' ms</span>';}axis.innerHTML=html;}
function setZoom(z){var centre=(scroll.scrollLeft+scroll.clientWidth/2)/chart.offsetWidth;
zoom=Math.min(1024,Math.max(1,z));chart.style.setProperty('--w',base*zoom+'px');
shown.textContent=zoom+'\u00d7';ticks();
scroll.scrollLeft=centre*chart.offsetWidth-scroll.clientWidth/2;}
document.querySelectorAll('button[data-zoom]').forEach(function(b){
b.addEventListener('click',function(){var f=Number(b.dataset.zoom);setZoom(f===0?1:zoom*f);});});
})();
)js";

}  // namespace

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (char c : text) {
    const char* entity = c == '&'    ? "&amp;"
                         : c == '<'  ? "&lt;"
                         : c == '>'  ? "&gt;"
                         : c == '"'  ? "&quot;"
                         : c == '\'' ? "&#39;"
                                     : nullptr;
    if (entity != nullptr) {
      out += entity;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// ---------------------------------------------------------------- recording

TimelineRecorder::TimelineRecorder(size_t events_max) : events_max_(events_max) {}

void TimelineRecorder::SetRun(TimelineRun run) {
  run.reproduce = Clip(run.reproduce);
  run.outcome = Clip(run.outcome);
  run_ = std::move(run);  // the options stay whole: they are ours and bounded
}

uint64_t TimelineRecorder::events_left_out() const {
  uint64_t total = 0;
  for (uint64_t n : left_out_) total += n;
  return total;
}

void TimelineRecorder::Saw(Instant at) { last_us_ = std::max(last_us_, at.us); }

void TimelineRecorder::LeaveOut(Kind kind, Instant at) {
  if (first_left_out_us_ < 0) first_left_out_us_ = at.us;
  ++left_out_[static_cast<size_t>(kind)];
}

bool TimelineRecorder::Admit(Kind kind, Instant at) {
  Saw(at);
  const bool reserved = kind == Kind::kNode || kind == Kind::kFault;
  const size_t budget = reserved ? events_max_ : events_max_ - events_max_ / 5;
  if (events_ < budget) {
    ++events_;
    return true;
  }
  LeaveOut(kind, at);
  return false;
}

TimelineRecorder::Session* TimelineRecorder::FindSession(uint32_t client, uint32_t session) {
  auto it = sessions_.find(SessionKey(client, session));
  return it == sessions_.end() ? nullptr : &it->second;
}

void TimelineRecorder::SessionOpened(uint32_t client, uint32_t session, Instant at) {
  if (!Admit(Kind::kSession, at)) return;
  Session& s = sessions_[SessionKey(client, session)];
  s.client = client;
  s.session = session;
  s.opened_us = at.us;
}

void TimelineRecorder::SessionClosed(uint32_t client, uint32_t session, Instant at,
                                     const SessionEnd& end) {
  Saw(at);
  if (!end.logged_in) {
    if (!Admit(Kind::kSession, at)) return;
    failed_logins_.push_back(
        Mark{at.us, Clip(Cat(SessionName(client, session), " never logged in: ", end.how, " (",
                             end.why, ")"))});
    return;
  }
  Session* s = FindSession(client, session);
  if (s == nullptr || s->closed_us >= 0) return;  // left out when it opened
  s->closed_us = at.us;
  s->how = Clip(end.how);
  s->why = Clip(end.why);
  s->trailing = Clip(end.trailing);
}

void TimelineRecorder::RequestSent(uint32_t client, uint32_t session, uint64_t seq, Instant at,
                                   std::string_view sql) {
  Session* s = FindSession(client, session);
  if (s == nullptr) return LeaveOut(Kind::kRequest, at);
  if (!Admit(Kind::kRequest, at)) return;
  s->calls.push_back(Call{.seq = seq, .sent_us = at.us, .sql = Clip(sql)});
}

void TimelineRecorder::AnswerReceived(uint32_t client, uint32_t session, uint64_t seq, Instant at,
                                      bool error, std::string_view summary) {
  Saw(at);
  Session* s = FindSession(client, session);
  if (s == nullptr) return;
  // Answers come in order: the call is the last one, unless it was left out.
  for (auto it = s->calls.rbegin(); it != s->calls.rend(); ++it) {
    if (it->seq != seq) continue;
    it->answered_us = at.us;
    it->error = error;
    it->summary = Clip(summary);
    return;
  }
}

void TimelineRecorder::ClientEvent(uint32_t client, uint32_t session, Instant at,
                                   std::string_view what) {
  Session* s = FindSession(client, session);
  if (s == nullptr) return LeaveOut(Kind::kClientEvent, at);
  if (!Admit(Kind::kClientEvent, at)) return;
  s->marks.push_back(Mark{at.us, Clip(what)});
}

void TimelineRecorder::NodeEvent(Instant at, std::string_view what) {
  if (!Admit(Kind::kNode, at)) return;
  node_.push_back(Mark{at.us, Clip(what)});
}

std::string TimelineRecorder::LinkName(uint64_t link) const {
  if (auto it = servers_.find(link); it != servers_.end()) {
    return Cat("link ", link, ", server ", it->second.detail);
  }
  if (auto it = client_links_.find(link); it != client_links_.end()) {
    return Cat("link ", link, ", a connection of client peer ", it->second);
  }
  return Cat("link ", link);
}

void TimelineRecorder::NetworkFault(Instant at, std::string_view kind, uint64_t link,
                                    std::string_view detail) {
  if (!Admit(Kind::kFault, at)) return;
  std::string text = Clip(Cat(LinkName(link), detail.empty() ? "" : ", ", detail));
  if (auto it = servers_.find(link); it != servers_.end()) {
    it->second.marks.push_back(Mark{at.us, Cat("fault: ", Clip(kind), ", ", text)});
  }
  faults_.push_back(Fault{at.us, Clip(kind), std::move(text)});
}

void TimelineRecorder::ServerConnectionOpened(uint64_t link, Instant at, std::string_view detail) {
  if (servers_.contains(link) || !Admit(Kind::kServerConnection, at)) return;
  servers_[link] = ServerConnection{.opened_us = at.us, .detail = Clip(detail)};
}

void TimelineRecorder::ServerConnectionEvent(uint64_t link, Instant at, std::string_view what) {
  Saw(at);
  auto it = servers_.find(link);
  if (it == servers_.end()) return;
  ServerConnection& c = it->second;
  if (what == "connected") {
    if (c.connected_us < 0) c.connected_us = at.us;
    return;
  }
  if (!Admit(Kind::kServerConnection, at)) return;
  c.marks.push_back(Mark{at.us, Clip(what)});
}

void TimelineRecorder::ServerConnectionClosed(uint64_t link, Instant at, std::string_view how,
                                              bool broken) {
  Saw(at);
  auto it = servers_.find(link);
  if (it == servers_.end() || it->second.closed_us >= 0) return;
  it->second.closed_us = at.us;
  it->second.how = Clip(how);
  it->second.broken = broken;
}

void TimelineRecorder::TraceLine(std::string_view line) {
  if (!line.starts_with("t=")) return;
  const size_t space = line.find(' ');
  int64_t us = 0;
  if (space == std::string_view::npos || !ParseInt(line.substr(2, space - 2), &us)) return;
  const std::string_view rest = line.substr(space + 1);
  const std::string_view event = rest.substr(0, rest.find(' '));
  const Instant at{us};
  uint64_t link = 0;
  ParseInt(Field(line, "link"), &link);  // 0 for lines without one
  if (event == "net.fault") {
    const std::string_view dir = Field(line, "dir");
    const std::string_view byte = Field(line, "at_byte");
    NetworkFault(at, Field(line, "kind"), link,
                 dir.empty() ? std::string() : Cat("going ", dir, " at byte ", byte));
  } else if (event == "net.connect") {
    const std::string conn(Field(line, "conn"));
    ServerConnectionOpened(link, at, Cat("connection ", conn, " to node ", Field(line, "node")));
    if (servers_.contains(link)) server_by_conn_[conn] = link;  // bounded by servers_
  } else if (event == "net.connected") {
    ServerConnectionEvent(link, at, "connected");
  } else if (event == "net.connect_failed") {
    ServerConnectionClosed(link, at, Cat("connect failed: ", Field(line, "why")), true);
  } else if (event == "net.reset") {
    ServerConnectionClosed(link, at, Cat("reset: ", Field(line, "why")), true);
  } else if (event == "net.proxy_close") {
    ServerConnectionClosed(link, at, "closed by the proxy", false);
  } else if (event == "net.fin" && Field(line, "dir") == "to_proxy") {
    ServerConnectionEvent(link, at, "the node closed its end");
  } else if (event == "net.accept") {
    uint64_t peer = 0;
    if (ParseInt(Field(line, "client"), &peer) && client_links_.size() < 4 * events_max_) {
      client_links_[link] = peer;
    }
  } else if (event == "idle_connection_lost") {
    auto it = server_by_conn_.find(std::string(Field(line, "conn")));
    if (it != server_by_conn_.end()) ServerConnectionEvent(it->second, at, "idle connection lost");
  }
}

void TimelineRecorder::Phase(Instant at, std::string_view what) {
  Saw(at);
  if (phases_.size() >= kPhasesMax) return LeaveOut(Kind::kPhase, at);
  phases_.push_back(Mark{at.us, Clip(what)});
}

void TimelineRecorder::ViolationFound(std::string_view oracle, Instant at, std::string_view client,
                                      std::string_view what) {
  Saw(at);
  if (violations_.size() >= kViolationsMax) return LeaveOut(Kind::kViolation, at);
  violations_.push_back(ViolationMark{Clip(oracle), at.us, Clip(client), Clip(what)});
}

// ---------------------------------------------------------------- the page

void TimelineRecorder::RenderHeader(std::string& out) const {
  out +=
      Cat("<header><h1>switchyard sim — seed ", run_.seed, run_.swarm ? " (swarm)" : "", "</h1>\n");
  if (!run_.outcome.empty()) {
    out += Cat("<p class=\"", run_.ok ? "ok" : "failed", "\">", HtmlEscape(run_.outcome), "</p>\n");
  }
  if (!run_.reproduce.empty()) {
    out += Cat("<p>Reproduce: <code>", HtmlEscape(run_.reproduce), "</code></p>\n");
  }
  if (!run_.options.empty()) {
    out += Cat("<details><summary>Derived options</summary><pre>", HtmlEscape(run_.options),
               "</pre></details>\n");
  }
  out += "</header>\n";
}

void TimelineRecorder::RenderViolationList(std::string& out) const {
  const uint64_t count = std::max<uint64_t>(run_.violation_count, violations_.size());
  if (count == 0) {
    out += "<p class=\"ok\">No violations.</p>\n";
    return;
  }
  out += Cat("<section class=\"violations\" id=\"violations\"><h2>", count,
             count == 1 ? " violation" : " violations", "</h2>\n");
  if (!run_.reproduce.empty()) {
    out += Cat("<p>Reproduce: <code>", HtmlEscape(run_.reproduce), "</code></p>\n");
  }
  out += "<ol>\n";
  for (const ViolationMark& v : violations_) {
    out +=
        Cat("<li><b>", HtmlEscape(v.oracle), "</b> at ", Ms(v.at_us), v.client.empty() ? "" : " · ",
            HtmlEscape(v.client), ": ", HtmlEscape(v.what), "</li>\n");
  }
  out += "</ol>\n";
  if (count > violations_.size()) {
    out += Cat("<p>", count - violations_.size(), " more were not kept.</p>\n");
  }
  out += "</section>\n";
}

void TimelineRecorder::RenderLeftOut(std::string& out) const {
  const uint64_t total = events_left_out();
  if (total == 0) return;
  std::string kinds;
  for (size_t i = 0; i < kKinds; ++i) {
    if (left_out_[i] == 0) continue;
    kinds += Cat(kinds.empty() ? "" : ", ", kKindNames[i], " ", left_out_[i]);
  }
  out += Cat("<p class=\"notice\" id=\"left-out\">This page draws at most ", events_max_,
             " events: ", total, " events were left out (", kinds, "). What happened after ",
             Ms(first_left_out_us_), " is incomplete.</p>\n");
}

void TimelineRecorder::RenderRunLanes(std::string& out, int64_t span_us) const {
  // Lines across every lane: violations, and where each phase began.
  out += "<div class=\"overlay\">";
  for (const ViolationMark& v : violations_) {
    out += absl::StrFormat("<b style=\"left:%.4f%%\"></b>", Percent(span_us, v.at_us));
  }
  for (const Mark& p : phases_) {
    out += absl::StrFormat("<b class=\"ph\" style=\"left:%.4f%%\"></b>", Percent(span_us, p.at_us));
  }
  out += "</div>\n";
  const double span_ms = static_cast<double>(span_us) / 1e3;
  const double step = NiceStep(span_ms * kTickSpacingPx / kTrackWidthPx);
  out +=
      "<div class=\"row axis\"><div class=\"label\">time (ms)</div><div class=\"track\" "
      "id=\"axis\">";
  for (int i = 0; i * step <= span_ms; ++i) {
    out += absl::StrFormat("<span class=\"tick\" style=\"left:%.4f%%\">%g ms</span>",
                           100.0 * i * step / span_ms, i * step);
  }
  out += "</div></div>\n";
  if (!violations_.empty()) {
    LaneOpen(out, "violations", "what the oracles found wrong", "bad");
    for (const ViolationMark& v : violations_) {
      Marker(out, span_us, "viol", v.at_us,
             Cat("violation: ", v.oracle, " at ", Ms(v.at_us), v.client.empty() ? "" : " · ",
                 v.client, "\n", v.what));
    }
    LaneClose(out);
  }
  LaneOpen(out, "phases", "faults, then liveness (faults healed), then probes");
  for (const Mark& p : phases_)
    Marker(out, span_us, "phase", p.at_us, Cat(p.what, " at ", Ms(p.at_us)));
  LaneClose(out);
}

void TimelineRecorder::RenderNodeLane(std::string& out, int64_t span_us) const {
  // One lane per node the events name ("crash n1"); "heal" speaks for all of them.
  std::set<std::string> names;
  for (const Mark& m : node_) {
    if (std::string name = NodeOf(m.what); !name.empty()) names.insert(name);
  }
  if (names.empty()) names.insert("");
  for (const std::string& name : names) RenderOneNode(out, span_us, name);
}

void TimelineRecorder::RenderOneNode(std::string& out, int64_t span_us,
                                     const std::string& name) const {
  LaneOpen(out, name.empty() ? std::string("node") : Cat("node ", name),
           "a simulated PostgreSQL node: down, paused and slow, and what the nemesis did to it");
  int64_t down_from = -1;
  int64_t paused_from = -1;
  int64_t slow_from = -1;
  const auto close = [&](int64_t& from, std::string_view css, int64_t to) {
    if (from < 0) return;
    Bar(out, span_us, css, from, to,
        Cat("node ", css, " from ", Ms(from), " to ", Ms(to), " (", Ms(to - from), ")"));
    from = -1;
  };
  const auto open = [](int64_t& from, int64_t at) {
    if (from < 0) from = at;
  };
  std::vector<const Mark*> marks;
  for (const Mark& m : node_) {
    const std::string node = NodeOf(m.what);
    if (node == name || (node.empty() && KindOf(m.what) == "heal")) marks.push_back(&m);
  }
  for (const Mark* m : marks) {
    const std::string_view kind = KindOf(m->what);
    if (kind == "crash" || kind == "shutdown") open(down_from, m->at_us);
    if (kind == "restart" || kind == "rebuild") close(down_from, "down", m->at_us);
    if (kind == "pause") open(paused_from, m->at_us);
    if (kind == "unpause") close(paused_from, "paused", m->at_us);
    if (kind == "slow") open(slow_from, m->at_us);
    if (kind == "slow_end") close(slow_from, "slow", m->at_us);
    if (kind == "heal") {
      close(down_from, "down", m->at_us);
      close(paused_from, "paused", m->at_us);
      close(slow_from, "slow", m->at_us);
    }
  }
  close(down_from, "down", span_us);
  close(paused_from, "paused", span_us);
  close(slow_from, "slow", span_us);
  // The markers go last so that they draw over the intervals.
  for (const Mark* m : marks) {
    const std::string_view kind = KindOf(m->what);
    if (kind == "unpause" || kind == "slow_end") continue;
    Marker(out, span_us, NodeClass(kind), m->at_us, Cat("node: ", m->what, " at ", Ms(m->at_us)));
  }
  LaneClose(out);
}

void TimelineRecorder::RenderFaultLane(std::string& out, int64_t span_us) const {
  LaneOpen(out, "network faults", "resets, black holes and connect timeouts the network injected");
  for (const Fault& f : faults_) {
    Marker(out, span_us, FaultClass(f.kind), f.at_us,
           Cat("network fault: ", f.kind, " at ", Ms(f.at_us), "\n", f.detail));
  }
  LaneClose(out);
}

void TimelineRecorder::RenderServerLanes(std::string& out, int64_t span_us) const {
  // Connections that do not overlap in time share a row.
  std::vector<int64_t> row_end;
  std::vector<std::string> rows;
  for (const auto& [link, c] : servers_) {
    const int64_t end = c.closed_us >= 0 ? c.closed_us : span_us;
    size_t row = 0;
    while (row < row_end.size() && row_end[row] >= c.opened_us) ++row;
    if (row == kServerRowsMax) {
      row = static_cast<size_t>(std::min_element(row_end.begin(), row_end.end()) - row_end.begin());
    }
    if (row == row_end.size()) {
      row_end.push_back(0);
      rows.emplace_back();
    }
    row_end[row] = std::max(row_end[row], end);
    std::string& r = rows[row];
    const std::string tip =
        Cat("server ", c.detail, " (link ", link, ")\nopened at ", Ms(c.opened_us),
            c.connected_us >= 0 ? Cat(", connected at ", Ms(c.connected_us)) : ", never connected",
            c.closed_us >= 0 ? Cat("\nended at ", Ms(c.closed_us), ": ", c.how) : "\nstill open");
    const int64_t connected = c.connected_us >= 0 ? c.connected_us : end;
    Bar(r, span_us, "s-connecting", c.opened_us, connected, tip);
    if (c.connected_us >= 0) Bar(r, span_us, "s-open", connected, end, tip);
    for (const Mark& m : c.marks) {
      Marker(r, span_us, "s-mark", m.at_us, Cat(m.what, " at ", Ms(m.at_us), "\n", c.detail));
    }
    if (c.broken) Marker(r, span_us, "s-broken", c.closed_us, tip);
  }
  GroupRow(out, Cat("server connections (", servers_.size(), ")"));
  for (size_t i = 0; i < rows.size(); ++i) {
    LaneOpen(out, Cat("server ", i + 1), "proxy-to-node connections that never overlapped");
    out += rows[i];
    LaneClose(out);
  }
}

void TimelineRecorder::RenderFailedLogins(std::string& out, int64_t span_us) const {
  if (failed_logins_.empty()) return;
  LaneOpen(out, "failed logins", "client sessions that never got in (the client retries)");
  for (const Mark& m : failed_logins_) {
    Marker(out, span_us, "login-failed", m.at_us, Cat(m.what, " at ", Ms(m.at_us)));
  }
  LaneClose(out);
}

void TimelineRecorder::RenderSessionLanes(std::string& out, int64_t span_us) const {
  std::map<std::string, std::vector<const ViolationMark*>> found;
  for (const ViolationMark& v : violations_) {
    if (!v.client.empty()) found[v.client].push_back(&v);
  }
  const std::vector<const ViolationMark*> none;
  GroupRow(out, Cat("client sessions (", sessions_.size(), ")"));
  for (const auto& [key, s] : sessions_) {
    auto it = found.find(SessionName(s.client, s.session));
    RenderSessionLane(out, span_us, s, it == found.end() ? none : it->second);
  }
}

void TimelineRecorder::RenderSessionLane(std::string& out, int64_t span_us, const Session& s,
                                         const std::vector<const ViolationMark*>& found) const {
  const std::string name = SessionName(s.client, s.session);
  const int64_t end = s.closed_us >= 0 ? s.closed_us : span_us;
  LaneOpen(out, name,
           Cat("client ", s.client, s.client >= kProbeClientBase ? " (a probe)" : "", ", session ",
               s.session),
           found.empty() ? "" : "bad");
  const std::string ended = s.closed_us >= 0
                                ? Cat("ended at ", Ms(s.closed_us), ": ", s.how, " (", s.why, ")")
                                : std::string("still open when the recording stopped");
  Bar(out, span_us, "life", s.opened_us, end,
      Cat(name, " logged in at ", Ms(s.opened_us), "\n", ended));
  for (const Call& c : s.calls) {
    const bool answered = c.answered_us >= 0;
    const std::string outcome =
        answered ? Cat(", answered at ", Ms(c.answered_us), " after ",
                       Ms(c.answered_us - c.sent_us), "\n", c.summary)
                 : Cat(", never answered", s.trailing.empty() ? "" : "\nreceived: ", s.trailing);
    Bar(out, span_us,
        !answered ? "c-open"
        : c.error ? "c-err"
                  : "c-ok",
        c.sent_us, answered ? c.answered_us : end,
        Cat(name, " #", c.seq, " ", c.sql, "\nsent at ", Ms(c.sent_us), outcome));
  }
  for (const Mark& m : s.marks) {
    Marker(out, span_us, "client-event", m.at_us, Cat(name, ": ", m.what, " at ", Ms(m.at_us)));
  }
  if (s.closed_us >= 0) Marker(out, span_us, EndClass(s.how), s.closed_us, Cat(name, " ", ended));
  for (const ViolationMark* v : found) {
    Marker(out, span_us, "viol", v->at_us,
           Cat("violation: ", v->oracle, " at ", Ms(v->at_us), "\n", v->what));
  }
  LaneClose(out);
}

std::string TimelineRecorder::RenderHtml() const {
  const int64_t span_us = std::max<int64_t>({last_us_, run_.sim_time_us, 1});
  std::string out;
  out += Cat("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>",
             "switchyard sim seed ", run_.seed, " timeline</title>\n<style>", kStyle,
             "</style></head>\n<body>\n");
  RenderHeader(out);
  RenderViolationList(out);
  RenderLeftOut(out);
  out += kLegend;
  out +=
      Cat("<p>", sessions_.size(), " client sessions, ", failed_logins_.size(), " failed logins, ",
          servers_.size(), " server connections, ", node_.size(), " node events, ", faults_.size(),
          " network faults; the run ends at ", Ms(span_us), ".</p>\n");
  out +=
      "<div class=\"controls\">Zoom: <button type=\"button\" data-zoom=\"0.5\">−</button>"
      "<button type=\"button\" data-zoom=\"2\">+</button><button type=\"button\" "
      "data-zoom=\"0\">reset</button> <span id=\"zoom\">1×</span></div>\n";
  out +=
      Cat("<div class=\"scroll\" id=\"scroll\"><div class=\"chart\" id=\"chart\" "
          "data-span-us=\"",
          span_us, "\" data-width=\"", kTrackWidthPx, "\">\n");
  RenderRunLanes(out, span_us);
  RenderNodeLane(out, span_us);
  RenderFaultLane(out, span_us);
  RenderServerLanes(out, span_us);
  RenderFailedLogins(out, span_us);
  RenderSessionLanes(out, span_us);
  out += Cat("</div></div>\n<script>", kScript, "</script>\n</body></html>\n");
  return out;
}

// ---------------------------------------------------------------- feeding it

std::string AnswerSummary(const Answer& a) {
  std::string text;
  if (const ErrorInfo* e = a.error()) {
    text = Cat(e->severity, " ", e->sqlstate, ": ", e->message);
    const ErrorInfo& last = a.errors.back();
    if (a.errors.size() > 1) {
      text += Cat("; then ", last.severity, " ", last.sqlstate, ": ", last.message);
    }
  } else if (!a.tags.empty()) {
    for (const std::string& tag : a.tags) text += Cat(text.empty() ? "" : ", ", tag);
  } else if (a.empty_queries > 0) {
    text = "empty query";
  }
  if (!a.rows.empty()) text += Cat(" · ", a.rows.size(), a.rows.size() == 1 ? " row" : " rows");
  if (!a.malformed.empty()) text += Cat(" · malformed: ", a.malformed);
  if (a.status != 0) text += Cat(" · status ", a.status);
  return text;
}

void TimelineObserver::OnWelcome(const ClientInfo& c, const Welcome& w) {
  if (recorder_ != nullptr) recorder_->SessionOpened(c.client, c.session, clock_.now());
  next_.OnWelcome(c, w);
}

void TimelineObserver::OnRequest(const ClientInfo& c, const Request& r) {
  if (recorder_ != nullptr) recorder_->RequestSent(c.client, c.session, r.seq, r.sent_at, r.sql);
  next_.OnRequest(c, r);
}

void TimelineObserver::OnAnswer(const ClientInfo& c, const SessionModel& s, const Request& r,
                                const Answer& a) {
  if (recorder_ != nullptr) {
    recorder_->AnswerReceived(c.client, c.session, r.seq, a.at,
                              !a.errors.empty() || !a.malformed.empty(), AnswerSummary(a));
  }
  next_.OnAnswer(c, s, r, a);
}

void TimelineObserver::OnCancelSent(const ClientInfo& c, const Request& r) {
  if (recorder_ != nullptr) {
    recorder_->ClientEvent(c.client, c.session, clock_.now(), Cat("sent a cancel for #", r.seq));
  }
  next_.OnCancelSent(c, r);
}

void TimelineObserver::OnReadingPaused(const ClientInfo& c, int32_t pid) {
  if (recorder_ != nullptr) {
    recorder_->ClientEvent(c.client, c.session, clock_.now(), "stopped reading");
  }
  next_.OnReadingPaused(c, pid);
}

void TimelineObserver::OnReadingResumed(const ClientInfo& c, int32_t pid) {
  if (recorder_ != nullptr) {
    recorder_->ClientEvent(c.client, c.session, clock_.now(), "reads again");
  }
  next_.OnReadingResumed(c, pid);
}

void TimelineObserver::OnStray(const ClientInfo& c, std::string_view what) {
  if (recorder_ != nullptr) {
    recorder_->ClientEvent(c.client, c.session, clock_.now(), Cat("stray: ", what));
  }
  next_.OnStray(c, what);
}

void TimelineObserver::OnEnded(const ClientInfo& c, const SessionModel& s, const Ending& e) {
  if (recorder_ != nullptr) {
    const Answer& t = e.trailing;
    const bool partial = !t.errors.empty() || !t.tags.empty() || !t.rows.empty();
    const std::string trailing = partial ? AnswerSummary(t) : "";
    recorder_->SessionClosed(c.client, c.session, clock_.now(),
                             SessionEnd{HowName(e.how), e.why, e.logged_in, trailing});
  }
  next_.OnEnded(c, s, e);
}

void RecordRunEnd(TimelineRecorder& recorder, const RunOptions& options, const RunResult& result) {
  TimelineRun run;
  run.seed = options.seed;
  run.swarm = options.swarm;
  run.reproduce = ReproduceCommand(options);
  run.options = Cat(io_sim::SimSeeds::FromRoot(options.seed).Describe(), "\n", options.Describe());
  run.ok = result.ok();
  run.violation_count = result.violation_count;
  run.sim_time_us = result.sim_time_us;
  run.outcome =
      absl::StrFormat("result=%s violations=%d sim_queries=%d sim_s=%.3f %s hash=%016x",
                      result.ok() ? "ok" : "FAILED", result.violation_count, result.sim_queries,
                      static_cast<double>(result.sim_time_us) / 1e6, result.phases, result.hash);
  for (const Violation& v : result.violations) {
    recorder.ViolationFound(v.oracle, v.at, v.client, v.what);
  }
  recorder.SetRun(std::move(run));
}

}  // namespace switchyard::sim
