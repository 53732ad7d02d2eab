// Test-only: records scripted client sessions against a real PostgreSQL server and writes them
// as a switchyard trace (trace::TraceEncoder), as a capture through the proxy would have: the
// client's messages (client->proxy) and the server's answers (proxy->client), with their times.
// The integration test (replay_integration_test.sh) then replays the trace with the real binary.
//
// usage: replay_trace_gen --port P --database D --scenario basic|lock --out FILE [--out2 FILE2]
// With --out2 the records are split in two rotated files; the second begins with a snapshot of
// every session live at the split, as the capture writes them.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/protocol/framing.h"
#include "core/protocol/messages.h"
#include "core/trace/encoder.h"
#include "core/trace/record.h"

namespace switchyard {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "replay_trace_gen: %s\n", what.c_str());
  std::exit(1);
}

struct Options {
  int port = 0;
  std::string database;
  std::string scenario;
  std::string out;
  std::string out2;
};

// One recorded session's connection.
struct Connection {
  int fd = -1;
  pg::FrameReader reader{pg::Direction::kBackend};
};

class Recorder {
 public:
  explicit Recorder(const Options& options) : options_(options), start_(Clock::now()) {}

  void Connect(uint64_t session) {
    Connection& connection = connections_[session];
    connection.fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(options_.port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;  // whole messages at once, as a driver sends them (no Nagle delays)
    ::setsockopt(connection.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (::connect(connection.fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      Die("cannot connect: " + std::string(std::strerror(errno)));
    }
    trace::Record open = Base(session, trace::Direction::kNone);
    pg::Parameters parameters = {
        {"user", "postgres"}, {"database", options_.database}, {"application_name", "trace_gen"}};
    open.body = trace::SessionOpen{.client_address = "127.0.0.1:40000",
                                   .user = "postgres",
                                   .database = options_.database,
                                   .startup_parameters = parameters};
    records_.push_back(open);
    Send(session, {pg::StartupMessage{.parameters = parameters}.Encode()});
    ReadUntil(session, 1);
  }

  void Send(uint64_t session, const std::vector<std::string>& messages) {
    Connection& connection = connections_.at(session);
    for (const std::string& message : messages) {
      trace::Record record = Base(session, trace::Direction::kClientToProxy);
      record.body = trace::Message{message};
      records_.push_back(record);
      if (::send(connection.fd, message.data(), message.size(), 0) !=
          static_cast<ssize_t>(message.size())) {
        Die("send failed");
      }
    }
  }

  // Reads answers until `terminators` ReadyForQuery or CopyInResponse messages arrived, or,
  // with `messages` > 0, exactly that many messages.
  void ReadUntil(uint64_t session, int terminators, int messages = 0) {
    Connection& connection = connections_.at(session);
    while (terminators > 0 || messages > 0) {
      auto frame = connection.reader.Next();
      if (!frame.ok()) Die("bad frame from the server");
      if (!frame->has_value()) {
        char buffer[65536];
        ssize_t got = ::recv(connection.fd, buffer, sizeof(buffer), 0);
        if (got <= 0) Die("the server closed the connection");
        connection.reader.Append(std::string_view(buffer, static_cast<size_t>(got)));
        continue;
      }
      trace::Record record = Base(session, trace::Direction::kProxyToClient);
      record.body = trace::Message{std::string((*frame)->raw)};
      records_.push_back(record);
      char type = (*frame)->type;
      if (messages > 0) {
        --messages;
      } else if (type == 'Z' || type == 'G') {
        --terminators;
      }
    }
  }

  void Close(uint64_t session) {
    Send(session, {pg::Terminate{}.Encode()});
    ::close(connections_.at(session).fd);
    trace::Record close = Base(session, trace::Direction::kNone);
    close.body = trace::SessionClose{.reason = "client terminated"};
    records_.push_back(close);
  }

  void Sleep(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

  std::vector<trace::Record>& records() { return records_; }
  int64_t capture_start_unix_us() const { return capture_start_unix_us_; }

 private:
  trace::Record Base(uint64_t session, trace::Direction direction) {
    trace::Record record;
    record.direction = direction;
    record.session = session;
    record.time_us =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start_).count();
    record.connection = session;
    return record;
  }

  const Options& options_;
  Clock::time_point start_;
  int64_t capture_start_unix_us_ = std::chrono::duration_cast<std::chrono::microseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count();
  std::map<uint64_t, Connection> connections_;
  std::vector<trace::Record> records_;
};

std::string Q(std::string sql) { return pg::Query{.sql = std::move(sql)}.Encode(); }
std::string Sync() { return pg::Sync{}.Encode(); }
std::string Execute() { return pg::Execute{}.Encode(); }
std::string Bind(std::string statement, std::string value) {
  return pg::Bind{.statement = std::move(statement), .parameters = {std::move(value)}}.Encode();
}

// DDL, inserts, COPY FROM STDIN, protocol-level and SQL prepared statements (pipelined, and with
// a Flush), a multi-statement transaction, captured errors, EXPLAIN ANALYZE, and a second session
// reading the `reference` table the test prepared in the database.
void Basic(Recorder& r) {
  r.Connect(1);
  r.Connect(2);
  r.Send(1, {Q("DROP TABLE IF EXISTS items")});
  r.ReadUntil(1, 1);
  r.Send(1, {Q("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(8,2))")});
  r.ReadUntil(1, 1);
  r.Send(1, {Q("INSERT INTO items VALUES (1, 'apple', 1.50), (2, 'pear', 2.25)")});
  r.ReadUntil(1, 1);
  r.Send(2, {Q("SET application_name = 'replay-test-2'")});
  r.ReadUntil(2, 1);
  r.Send(2, {Q("SELECT count(*) FROM reference")});
  r.ReadUntil(2, 1);
  r.Send(1, {Q("COPY items FROM STDIN")});
  r.ReadUntil(1, 1);
  r.Send(1, {pg::CopyData{.data = "3\tplum\t0.75\n"}.Encode(),
             pg::CopyData{.data = "4\tfig\t3.00\n"}.Encode(), pg::CopyDone{}.Encode()});
  r.ReadUntil(1, 1);
  r.Send(1, {pg::Parse{.name = "by_id",
                       .query = "SELECT name, price FROM items WHERE id = $1",
                       .parameter_types = {23}}
                 .Encode(),
             pg::Describe{.kind = 'S', .name = "by_id"}.Encode(), Sync()});
  r.ReadUntil(1, 1);
  r.Send(1, {Bind("by_id", "2"), Execute(), Sync(), Bind("by_id", "3"), Execute(), Sync()});
  r.ReadUntil(1, 2);
  r.Send(1, {pg::Parse{.query = "SELECT count(*) FROM items WHERE price > $1"}.Encode(),
             pg::Flush{}.Encode()});
  r.ReadUntil(1, 0, 1);  // ParseComplete, flushed
  r.Send(1, {Bind("", "1"), Execute(), Sync()});
  r.ReadUntil(1, 1);
  r.Send(1, {pg::Parse{.query = "SELEC 1"}.Encode(), Bind("", "1"), Execute(), Sync()});
  r.ReadUntil(1, 1);
  r.Send(1, {Q("BEGIN; UPDATE items SET price = price * 2 WHERE id < 3; "
               "SELECT count(*) FROM items; COMMIT")});
  r.ReadUntil(1, 1);
  r.Send(1, {Q("SELECT 1/0")});
  r.ReadUntil(1, 1);
  r.Send(1, {Q("PREPARE cheap(numeric) AS SELECT id, name FROM items WHERE price < $1 "
               "ORDER BY id")});
  r.ReadUntil(1, 1);
  r.Send(1, {Q("EXECUTE cheap(3)")});
  r.ReadUntil(1, 1);
  r.Send(1, {Q("EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM items WHERE id = 2")});
  r.ReadUntil(1, 1);
  r.Send(1, {Q("SELECT id, label FROM reference ORDER BY id")});
  r.ReadUntil(1, 1);
  r.Send(1, {Q("SELECT id, name, price FROM items ORDER BY id")});
  r.ReadUntil(1, 1);
  r.Close(2);
  r.Close(1);
}

// Session 1 holds a lock for 3 s; session 2 waits for it.
void Lock(Recorder& r) {
  r.Connect(1);
  r.Connect(2);
  r.Send(1, {Q("BEGIN")});
  r.ReadUntil(1, 1);
  r.Send(1, {Q("LOCK TABLE reference IN ACCESS EXCLUSIVE MODE")});
  r.ReadUntil(1, 1);
  r.Sleep(300);
  r.Send(2, {Q("SELECT count(*) FROM reference")});
  r.Sleep(3000);
  r.Send(1, {Q("COMMIT")});
  r.ReadUntil(1, 1);
  r.ReadUntil(2, 1);
  r.Send(2, {Q("SELECT 1")});
  r.ReadUntil(2, 1);
  r.Close(1);
  r.Close(2);
}

// What a capture writes for a session live when a new file begins.
struct LiveSession {
  trace::Snapshot snapshot;
  bool closed = false;
};

std::map<uint64_t, LiveSession> LiveAt(const std::vector<trace::Record>& records, size_t end) {
  std::map<uint64_t, LiveSession> live;
  for (size_t i = 0; i < end; ++i) {
    const trace::Record& record = records[i];
    LiveSession& session = live[record.session];
    if (const auto* open = std::get_if<trace::SessionOpen>(&record.body)) {
      session.snapshot.session = *open;
    } else if (std::holds_alternative<trace::SessionClose>(record.body)) {
      session.closed = true;
    } else if (const auto* message = std::get_if<trace::Message>(&record.body)) {
      const std::string& bytes = message->bytes;
      if (record.direction == trace::Direction::kProxyToClient && bytes[0] == 'Z') {
        session.snapshot.transaction_status = bytes[5];
      }
      if (record.direction == trace::Direction::kClientToProxy && bytes[0] == 'P') {
        auto parse = pg::Parse::Decode(std::string_view(bytes).substr(5));
        if (parse.ok() && !parse->name.empty()) {
          session.snapshot.prepared_statements.push_back(
              trace::PreparedStatement{.name = parse->name,
                                       .query = parse->query,
                                       .parameter_types = parse->parameter_types});
        }
      }
    }
  }
  return live;
}

void WriteFile(const std::string& path, int64_t start_unix_us,
               const std::vector<trace::Record>& records) {
  trace::TraceHeader header;
  header.capture_start_unix_us = start_unix_us;
  header.proxy_id = "replay_trace_gen";
  std::string out;
  if (!trace::AppendHeader(header, out).ok()) Die("header");
  trace::TraceEncoder encoder(header.record_body_size_max);
  for (const trace::Record& record : records) {
    if (!encoder.Append(record, out).ok()) Die("record too large");
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc) << out;
}

void Write(const Options& options, Recorder& recorder) {
  std::vector<trace::Record> records = recorder.records();
  size_t split = options.out2.empty() ? records.size() : records.size() / 2;
  std::vector<trace::Record> first(records.begin(), records.begin() + split);
  std::vector<trace::Record> second;
  if (!options.out2.empty()) {
    for (auto& [id, session] : LiveAt(records, split)) {
      if (session.closed) continue;
      trace::Record snapshot;
      snapshot.session = id;
      snapshot.time_us = records[split].time_us;
      snapshot.body = session.snapshot;
      second.push_back(snapshot);
    }
    second.insert(second.end(), records.begin() + split, records.end());
  }
  // Sequence numbers per session, in file order (a snapshot takes one too).
  std::map<uint64_t, uint64_t> sequence;
  for (auto* file : {&first, &second}) {
    for (trace::Record& record : *file) record.sequence = sequence[record.session]++;
  }
  WriteFile(options.out, recorder.capture_start_unix_us(), first);
  if (!options.out2.empty()) WriteFile(options.out2, recorder.capture_start_unix_us(), second);
}

Options Parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    std::string value = argv[i + 1];
    if (flag == "--port")
      options.port = std::atoi(value.c_str());
    else if (flag == "--database")
      options.database = value;
    else if (flag == "--scenario")
      options.scenario = value;
    else if (flag == "--out")
      options.out = value;
    else if (flag == "--out2")
      options.out2 = value;
    else
      Die("unknown flag " + flag);
  }
  if (options.port == 0 || options.database.empty() || options.out.empty()) {
    Die("usage: replay_trace_gen --port P --database D --scenario basic|lock --out FILE "
        "[--out2 FILE2]");
  }
  return options;
}

}  // namespace
}  // namespace switchyard

int main(int argc, char** argv) {
  using namespace switchyard;
  Options options = Parse(argc, argv);
  Recorder recorder(options);
  if (options.scenario == "basic") {
    Basic(recorder);
  } else if (options.scenario == "lock") {
    Lock(recorder);
  } else {
    Die("unknown scenario " + options.scenario);
  }
  Write(options, recorder);
  return 0;
}
