complete -c chat-server -l listen -d 'Address to listen on, IPv4 or IPv6 (e.g. 0.0.0.0:7878 or [::]:7878). Repeat the option, or separate addresses with commas in the environment variable, to listen on several. [default: 127.0.0.1:7878, unless started by socket activation: then only the sockets passed in, and these addresses as well if given]' -r
complete -c chat-server -l max-line -d 'Longest line a client may send, in bytes, not counting the line end. A longer line gets an error and is discarded; the connection stays' -r
complete -c chat-server -l max-clients -d 'Most clients connected at once. One more is told "server full" and closed. The daemon raises its soft descriptor limit to the hard one at start; a value that does not fit that limit is an error, and the default is lowered to what fits' -r
complete -c chat-server -l shutdown-grace -d 'On SIGTERM or SIGINT, how long to keep flushing queued messages to clients before closing anyway, in seconds (fractions allowed)' -r
complete -c chat-server -l sendq -d 'Most bytes queued to one client that is not reading. A client whose queue would grow past this is disconnected as a slow consumer, and its room is told' -r
complete -c chat-server -l rate -d 'Lines per second each client may send on average; 0 turns flood control off. A client over the rate is not read from until it may go on, so nothing it sent is lost and only it is slowed down' -r
complete -c chat-server -l burst -d 'Lines a client may send at once before --rate applies' -r
complete -c chat-server -l max-per-ip -d 'Most connections from one IP address; 0 means no limit. One more is told "too many connections from your address" and closed' -r
complete -c chat-server -l idle-timeout -d 'Disconnect a client that sent nothing for this many seconds, with a notice; 0 means never' -r
complete -c chat-server -l quiet-above -d 'Rooms with more members than this are not told of joins, leaves and nick changes (/who still lists everyone); 0 means always tell' -r
complete -c chat-server -l metrics-listen -d 'Serve Prometheus metrics over HTTP at http://ADDR/metrics (e.g. 127.0.0.1:9187). Off unless given. The endpoint has no authentication: keep it on loopback or a private network' -r
complete -c chat-server -l stats-interval -d 'Log a line of figures (clients, rooms, traffic) at info level every this many seconds; 0 means never' -r
complete -c chat-server -l threads -d 'I/O threads serving the sockets; 0 means one per CPU core. Each takes an equal share of the connections, so a big room\'s fan-out is written from every core' -r
complete -c chat-server -s h -l help -d 'Print help (see more with \'--help\')'
complete -c chat-server -s V -l version -d 'Print version'
