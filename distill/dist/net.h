// Small TCP probes around c10d's store: a free port for --nproc, whether rank 0's port is taken,
// and waiting until rank 0 listens.
//
// c10d's TCPStore logs to stderr when it cannot bind or keeps failing to connect; checking first
// turns those cases into the usual one-line errors. Nothing here carries data.
// Invariants: every call returns within its timeout; IPv4 only, as MASTER_ADDR is used today.
#pragma once

#include <string>

namespace mp::dist {

// A port that the OS just reported free on 127.0.0.1 (for --nproc on one host).
int find_free_port();
// Why `port` cannot be bound on every interface now ("Address already in use"), or "" when it can.
std::string port_unavailable(int port);
// Waits until host:port accepts a TCP connection (then closes it). False after timeout_s;
// `why` then holds the reason of the last attempt.
bool wait_for_listener(const std::string& host, int port, double timeout_s, std::string* why);

}  // namespace mp::dist
