# Sourced by bench/prune.sh and bench/threads.sh: starts Postfix's smtp-sink
# on a free port (its pid in SINK) and exports the settings of a service on
# a fresh SQLite store in $work delivering to it.
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
smtp_port=$(free_port)
/usr/sbin/smtp-sink -u "$(id -un)" "127.0.0.1:$smtp_port" 1024 >/dev/null 2>&1 &
SINK=$!
export MAILBRIDGE_LISTEN="127.0.0.1:$(free_port)"
export MAILBRIDGE_DATABASE_URL="sqlite://$work/queue.db"
export MAILBRIDGE_TRANSPORT="smtp://127.0.0.1:$smtp_port?tls=none&max_connections=8"
export MAILBRIDGE_JWT_SECRET="bench-secret-0123456789abcdef-0123456789"
export MAILBRIDGE_LOG=error
export MAILBRIDGE_MAX_PENDING=100000000
