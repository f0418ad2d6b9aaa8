complete -c chat-server -l listen -d 'Address to listen on, IPv4 or IPv6 (e.g. 0.0.0.0:7878 or [::]:7878). Repeat the option, or separate addresses with commas in the environment variable, to listen on several. [default: 127.0.0.1:7878, unless started by socket activation: then only the sockets passed in, and these addresses as well if given]' -r
complete -c chat-server -l max-line -d 'Longest line a client may send, in bytes, not counting the line end. A longer line gets an error and is discarded; the connection stays' -r
complete -c chat-server -l max-clients -d 'Most clients connected at once. When full, a newcomer takes the place of the connection that has been here longest (at least 10 s) without saying anything, or, if there is none, is told "server full" and closed. The daemon raises its soft descriptor limit to the hard one at start; a value that does not fit that limit is an error, and the default is lowered to what fits' -r
complete -c chat-server -l shutdown-grace -d 'On SIGTERM, SIGINT or SIGHUP, how long to keep flushing queued messages to clients before closing anyway, in seconds (fractions allowed, at most 3600)' -r
complete -c chat-server -l sendq -d 'Most bytes queued to one client that is not reading. A client whose queue would grow past this is disconnected as a slow consumer, and its room is told. At most 1 GiB' -r
complete -c chat-server -l rate -d 'Lines per second each client may send on average; 0 turns flood control off. A client over the rate is not read from until it may go on, so nothing it sent is lost and only it is slowed down' -r
complete -c chat-server -l burst -d 'Lines a client may send at once before --rate applies' -r
complete -c chat-server -l max-per-ip -d 'Most connections from one IP address; 0 means no limit. One more is told "too many connections from your address" and closed' -r
complete -c chat-server -l max-per-net -d 'Most connections from one network (addresses sharing their first --net-prefix-v4 or --net-prefix-v6 bits); 0 means no limit. One more is told "too many connections from your network" and closed' -r
complete -c chat-server -l net-prefix-v4 -d 'How many leading bits of an IPv4 address make its network' -r
complete -c chat-server -l net-prefix-v6 -d 'How many leading bits of an IPv6 address make its network' -r
complete -c chat-server -l connect-rate -d 'New connections a second one address may open, on average; a whole network may open four times as many. 0 turns the throttle off. One more is told "too many new connections from your address" and closed' -r
complete -c chat-server -l connect-burst -d 'New connections one address may open at once before --connect-rate applies (a network: four times as many)' -r
complete -c chat-server -l idle-timeout -d 'Disconnect a client that completed no line for this many seconds (bytes without a newline do not count), with a notice; 0 means never. At most a week' -r
complete -c chat-server -l quiet-above -d 'Rooms with more members than this are not told of joins, leaves and nick changes (/who still lists everyone); 0 means always tell' -r
complete -c chat-server -l history -d 'Lines each room remembers (chat lines and actions, never private messages), replayed to whoever joins it; 0 turns history off. An empty room keeps its history until --history-bytes needs the room. In memory only: a restart forgets it' -r
complete -c chat-server -l replay -d 'Lines of a room\'s history replayed on joining it, and what /history shows when not told how many (at most --history)' -r
complete -c chat-server -l history-bytes -d 'Most bytes all rooms\' histories together may take. Past it, the histories of empty rooms go first, least recently used first, then a room\'s own oldest lines. At most 1 TiB' -r
complete -c chat-server -l metrics-listen -d 'Serve Prometheus metrics over HTTP at http://ADDR/metrics (e.g. 127.0.0.1:9187). Off unless given. The endpoint has no authentication: keep it on loopback or a private network' -r
complete -c chat-server -l stats-interval -d 'Log a line of figures (clients, rooms, traffic) at info level every this many seconds; 0 means never. At most a day' -r
complete -c chat-server -l threads -d 'I/O threads serving the sockets; 0 means one per CPU core. Each takes an equal share of the connections, so a big room\'s fan-out is written from every core' -r
complete -c chat-server -s h -l help -d 'Print help (see more with \'--help\')'
complete -c chat-server -s V -l version -d 'Print version'
