# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_chat_server_global_optspecs
    string join \n listen= tls-listen= tls-cert= tls-key= irc-listen= irc-tls-listen= web-listen= web-tls-listen= web-allow-origin= server-name= motd-file= control-socket= state-dir= take-over= max-line= max-clients= shutdown-grace= sendq= rate= burst= max-per-ip= max-per-net= net-prefix-v4= net-prefix-v6= connect-rate= connect-burst= idle-timeout= quiet-above= history= replay= history-bytes= metrics-listen= stats-interval= threads= cluster= cluster-optional cluster-claim-ttl= cluster-timeout= h/help V/version
end

function __fish_chat_server_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_chat_server_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_chat_server_using_subcommand
    set -l cmd (__fish_chat_server_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c chat-server -n "__fish_chat_server_needs_command" -l listen -d 'Address to listen on: HOST:PORT, HOST, an IP address, or an IPv6 address in brackets with a port ([::1]:7878); the port defaults to 7878. A host name listens on every address it resolves to at start (localhost: usually 127.0.0.1 and ::1). Repeat the option, or separate addresses with commas, to listen on several. [default: 127.0.0.1:7878, unless started by socket activation: then only the sockets passed in, and these addresses as well if given]' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l tls-listen -d 'Address to listen on for the line protocol over TLS, in the same forms as --listen; the port defaults to 7879. Repeat the option, or separate addresses with commas, for several. Needs --tls-cert and --tls-key. Given without --listen, only TLS is served' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l tls-cert -d 'The certificate chain TLS listeners present: a PEM file, the server\'s own certificate first (an ACME client\'s fullchain.pem). Read again on SIGHUP. Not given, the systemd credential tls-cert is used if there is one' -r -F
complete -c chat-server -n "__fish_chat_server_needs_command" -l tls-key -d 'The private key of --tls-cert: a PEM file (PKCS#8, PKCS#1 or SEC1). Read again on SIGHUP. Not given, the systemd credential tls-key is used if there is one' -r -F
complete -c chat-server -n "__fish_chat_server_needs_command" -l irc-listen -d 'Address to listen on for IRC clients (irssi, WeeChat, HexChat, ...), in the same forms as --listen; the port defaults to 6667. Repeat the option, or separate addresses with commas, for several. IRC and line protocol users share the rooms (a room is a channel). Given without --listen, the line protocol\'s default address is not opened' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l irc-tls-listen -d 'Address to listen on for IRC over TLS; the port defaults to 6697. Needs --tls-cert and --tls-key, the certificate every TLS listener serves' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l web-listen -d 'Address to serve the web page on: a browser opens http://ADDR/ and chats in the same rooms as everyone else, over a WebSocket at /ws that any program may use too (it speaks the line protocol). In the same forms as --listen; the port defaults to 7880. Repeat the option, or separate addresses with commas, for several. Given without --listen, the line protocol\'s default address is not opened' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l web-tls-listen -d 'Address to serve the web page on over HTTPS (and its WebSocket over WSS); the port defaults to 7881. Needs --tls-cert and --tls-key, the certificate every TLS listener serves' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l web-allow-origin -d 'An origin, besides the server\'s own, whose pages may open the chat\'s WebSocket: the public name the page is served under (https://chat.example.org), or another site that embeds the chat. The server\'s own origin is the address the page was loaded from when that is an IP address, localhost or --server-name; any other name must be listed here (a name only DNS ties to this server could be another site\'s, rebound). Repeat the option, or separate origins with commas, for several' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l server-name -d 'The server\'s name in IRC replies: 1 to 63 letters, digits, dots and dashes. Default: this machine\'s host name' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l motd-file -d 'A text file IRC clients are shown as the message of the day when they connect (at most 100 lines of 400 characters are kept); read at start. Without it they are told there is none' -r -F
complete -c chat-server -n "__fish_chat_server_needs_command" -l control-socket -d 'The Unix socket `chat-server ctl` talks to (mode 0600: its owner alone may). Default: `control` in the directory systemd names in RUNTIME_DIRECTORY (RuntimeDirectory=); without either, none' -r -F
complete -c chat-server -n "__fish_chat_server_needs_command" -l state-dir -d 'Where the server keeps what outlives a restart: the server bans of `chat-server ctl ban`, in the file server-bans. Default: the directory systemd names in STATE_DIRECTORY (StateDirectory=); without either, server bans live in memory only' -r -F
complete -c chat-server -n "__fish_chat_server_needs_command" -l take-over -d 'Takes over from the chat-server whose control socket this is (its --control-socket): that server hands over every client connection, its listening sockets and the chat state, and exits; clients stay connected, with their nicks and rooms, and this process\'s options apply to them from then on (README.md, "Restarting without dropping anyone")' -r -F
complete -c chat-server -n "__fish_chat_server_needs_command" -l max-line -d 'Longest line a client may send, in bytes, not counting the line end. A longer line gets an error and is discarded; the connection stays' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l max-clients -d 'Most clients connected at once. When full, a newcomer takes the place of the connection that has been here longest (at least 10 s) without saying anything, or, if there is none, is told "server full" and closed. The daemon raises its soft descriptor limit to the hard one at start; a value that does not fit that limit is an error, and the default is lowered to what fits' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l shutdown-grace -d 'On SIGTERM or SIGINT, how long to keep flushing queued messages to clients before closing anyway, in seconds (fractions allowed, at most 3600)' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l sendq -d 'Most bytes queued to one client that is not reading. A client whose queue would grow past this is disconnected as a slow consumer, and its room is told. At most 1 GiB' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l rate -d 'Lines per second each client may send on average; 0 turns flood control off. A client over the rate is not read from until it may go on, so nothing it sent is lost and only it is slowed down' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l burst -d 'Lines a client may send at once before --rate applies' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l max-per-ip -d 'Most connections from one IP address; 0 means no limit. One more is told "too many connections from your address" and closed' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l max-per-net -d 'Most connections from one network (addresses sharing their first --net-prefix-v4 or --net-prefix-v6 bits); 0 means no limit. One more is told "too many connections from your network" and closed' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l net-prefix-v4 -d 'How many leading bits of an IPv4 address make its network' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l net-prefix-v6 -d 'How many leading bits of an IPv6 address make its network' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l connect-rate -d 'New connections a second one address may open, on average; a whole network may open four times as many. 0 turns the throttle off. One more is told "too many new connections from your address" and closed. The web listeners have a throttle of their own, eight times this and --connect-burst: a page load takes five connections' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l connect-burst -d 'New connections one address may open at once before --connect-rate applies (a network: four times as many)' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l idle-timeout -d 'Disconnect a client that completed no line for this many seconds (bytes without a newline do not count), with a notice; 0 means never. At most a week' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l quiet-above -d 'Rooms with more members than this are not told of joins, leaves and nick changes (/who still lists everyone); 0 means always tell' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l history -d 'Lines each room remembers (chat lines and actions, never private messages), replayed to whoever joins it; 0 turns history off. An empty room keeps its history until --history-bytes needs the room. In memory only: a restart forgets it' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l replay -d 'Lines of a room\'s history replayed on joining it, and what /history shows when not told how many (at most --history)' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l history-bytes -d 'Most bytes all rooms\' histories together may take. Past it, the histories of empty rooms go first, least recently used first, then a room\'s own oldest lines. At most 1 TiB' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l metrics-listen -d 'Serve Prometheus metrics over HTTP at http://ADDR/metrics (e.g. 127.0.0.1:9187): HOST:PORT, HOST or an IP address, the port 9187 if none is given; a host name serves on the first address it resolves to. Off unless given. The endpoint has no authentication: keep it on loopback or a private network' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l stats-interval -d 'Log a line of figures (clients, rooms, traffic) at info level every this many seconds; 0 means never. At most a day' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l threads -d 'I/O threads serving the sockets; 0 means one per CPU core. Each takes an equal share of the connections, so a big room\'s fan-out is written from every core' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l cluster -d 'Join a cluster: share rooms, nicks, presence and history with every instance that uses the same Redis, redis://[:PASSWORD@]HOST:PORT[/DB]. Off unless given; without it Redis is never contacted. The password is never printed' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l cluster-claim-ttl -d 'With --cluster: seconds after which the nicks and presence of an instance that stopped refreshing them (it crashed, or lost Redis) expire; each live instance refreshes them every third of this. At least 2' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l cluster-timeout -d 'With --cluster: milliseconds after which a Redis command or read that has no answer counts as a lost link (Redis gone or frozen). At least 100' -r
complete -c chat-server -n "__fish_chat_server_needs_command" -l cluster-optional -d 'With --cluster: start even if Redis cannot be reached (serving local users only, and retrying), rather than exit 1'
complete -c chat-server -n "__fish_chat_server_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c chat-server -n "__fish_chat_server_needs_command" -s V -l version -d 'Print version'
complete -c chat-server -n "__fish_chat_server_needs_command" -f -a "ctl" -d 'Talks to a running server through its control socket: status, who, rooms, kick, ban, unban, bans, announce, reload, shutdown'
complete -c chat-server -n "__fish_chat_server_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and not __fish_seen_subcommand_from status who rooms kick ban unban bans announce reload shutdown help" -l socket -d 'The server\'s control socket (its --control-socket)' -r -F
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and not __fish_seen_subcommand_from status who rooms kick ban unban bans announce reload shutdown help" -l json -d 'Print the server\'s answer as JSON, for scripts'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and not __fish_seen_subcommand_from status who rooms kick ban unban bans announce reload shutdown help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and not __fish_seen_subcommand_from status who rooms kick ban unban bans announce reload shutdown help" -f -a "status" -d 'The server\'s version, uptime, listeners, and how many users, rooms and server bans it has'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and not __fish_seen_subcommand_from status who rooms kick ban unban bans announce reload shutdown help" -f -a "who" -d 'Who is connected (at most 10,000), with their addresses, or who is in ROOM'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and not __fish_seen_subcommand_from status who rooms kick ban unban bans announce reload shutdown help" -f -a "rooms" -d 'Every room with members (hidden ones too), with its settings'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and not __fish_seen_subcommand_from status who rooms kick ban unban bans announce reload shutdown help" -f -a "kick" -d 'Disconnects the user NICK; they and their rooms are told REASON'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and not __fish_seen_subcommand_from status who rooms kick ban unban bans announce reload shutdown help" -f -a "ban" -d 'Bans addresses from the server, on every listener: MASK is an address, *@HOST with * and ?, or an address block (10.0.0.0/24). Whoever is connected from there is disconnected; new connections are refused before their welcome. Kept across restarts in the state directory'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and not __fish_seen_subcommand_from status who rooms kick ban unban bans announce reload shutdown help" -f -a "unban" -d 'Lifts a server ban'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and not __fish_seen_subcommand_from status who rooms kick ban unban bans announce reload shutdown help" -f -a "bans" -d 'Lists the server bans in force'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and not __fish_seen_subcommand_from status who rooms kick ban unban bans announce reload shutdown help" -f -a "announce" -d 'Tells everyone connected TEXT, as a notice from the server'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and not __fish_seen_subcommand_from status who rooms kick ban unban bans announce reload shutdown help" -f -a "reload" -d 'Reads the TLS certificate and key again, as SIGHUP does'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and not __fish_seen_subcommand_from status who rooms kick ban unban bans announce reload shutdown help" -f -a "shutdown" -d 'Stops the server gracefully, as SIGTERM does'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and not __fish_seen_subcommand_from status who rooms kick ban unban bans announce reload shutdown help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and __fish_seen_subcommand_from who" -s h -l help -d 'Print help'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and __fish_seen_subcommand_from rooms" -s h -l help -d 'Print help'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and __fish_seen_subcommand_from kick" -s h -l help -d 'Print help'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and __fish_seen_subcommand_from ban" -s d -l duration -d 'How long (10m, 2h, 7d, 1w; at most a year); until lifted without it' -r
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and __fish_seen_subcommand_from ban" -s h -l help -d 'Print help'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and __fish_seen_subcommand_from unban" -s h -l help -d 'Print help'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and __fish_seen_subcommand_from bans" -s h -l help -d 'Print help'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and __fish_seen_subcommand_from announce" -s h -l help -d 'Print help'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and __fish_seen_subcommand_from reload" -s h -l help -d 'Print help'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and __fish_seen_subcommand_from shutdown" -s h -l help -d 'Print help'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "status" -d 'The server\'s version, uptime, listeners, and how many users, rooms and server bans it has'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "who" -d 'Who is connected (at most 10,000), with their addresses, or who is in ROOM'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "rooms" -d 'Every room with members (hidden ones too), with its settings'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "kick" -d 'Disconnects the user NICK; they and their rooms are told REASON'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "ban" -d 'Bans addresses from the server, on every listener: MASK is an address, *@HOST with * and ?, or an address block (10.0.0.0/24). Whoever is connected from there is disconnected; new connections are refused before their welcome. Kept across restarts in the state directory'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "unban" -d 'Lifts a server ban'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "bans" -d 'Lists the server bans in force'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "announce" -d 'Tells everyone connected TEXT, as a notice from the server'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "reload" -d 'Reads the TLS certificate and key again, as SIGHUP does'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "shutdown" -d 'Stops the server gracefully, as SIGTERM does'
complete -c chat-server -n "__fish_chat_server_using_subcommand ctl; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c chat-server -n "__fish_chat_server_using_subcommand help; and not __fish_seen_subcommand_from ctl help" -f -a "ctl" -d 'Talks to a running server through its control socket: status, who, rooms, kick, ban, unban, bans, announce, reload, shutdown'
complete -c chat-server -n "__fish_chat_server_using_subcommand help; and not __fish_seen_subcommand_from ctl help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c chat-server -n "__fish_chat_server_using_subcommand help; and __fish_seen_subcommand_from ctl" -f -a "status" -d 'The server\'s version, uptime, listeners, and how many users, rooms and server bans it has'
complete -c chat-server -n "__fish_chat_server_using_subcommand help; and __fish_seen_subcommand_from ctl" -f -a "who" -d 'Who is connected (at most 10,000), with their addresses, or who is in ROOM'
complete -c chat-server -n "__fish_chat_server_using_subcommand help; and __fish_seen_subcommand_from ctl" -f -a "rooms" -d 'Every room with members (hidden ones too), with its settings'
complete -c chat-server -n "__fish_chat_server_using_subcommand help; and __fish_seen_subcommand_from ctl" -f -a "kick" -d 'Disconnects the user NICK; they and their rooms are told REASON'
complete -c chat-server -n "__fish_chat_server_using_subcommand help; and __fish_seen_subcommand_from ctl" -f -a "ban" -d 'Bans addresses from the server, on every listener: MASK is an address, *@HOST with * and ?, or an address block (10.0.0.0/24). Whoever is connected from there is disconnected; new connections are refused before their welcome. Kept across restarts in the state directory'
complete -c chat-server -n "__fish_chat_server_using_subcommand help; and __fish_seen_subcommand_from ctl" -f -a "unban" -d 'Lifts a server ban'
complete -c chat-server -n "__fish_chat_server_using_subcommand help; and __fish_seen_subcommand_from ctl" -f -a "bans" -d 'Lists the server bans in force'
complete -c chat-server -n "__fish_chat_server_using_subcommand help; and __fish_seen_subcommand_from ctl" -f -a "announce" -d 'Tells everyone connected TEXT, as a notice from the server'
complete -c chat-server -n "__fish_chat_server_using_subcommand help; and __fish_seen_subcommand_from ctl" -f -a "reload" -d 'Reads the TLS certificate and key again, as SIGHUP does'
complete -c chat-server -n "__fish_chat_server_using_subcommand help; and __fish_seen_subcommand_from ctl" -f -a "shutdown" -d 'Stops the server gracefully, as SIGTERM does'
