complete -c chat-client -l nick -d 'Nick to take once connected (sends /nick NAME first): 1-24 letters, digits, \'_\' or \'-\', starting with a letter' -r
complete -c chat-client -l room -d 'Room to join once connected (sends /join ROOM after /nick); the leading \'#\' is optional' -r
complete -c chat-client -l max-line -d 'Longest line to send, in bytes (UTF-8, not counting the line end; a leading // or a /me or /msg NICK counts): the server\'s --max-line. A longer line is not sent, and an error says so; nothing is shown as said. If the server refuses a line as too long, its own limit is used from then on' -r
complete -c chat-client -l connect-timeout -d 'Seconds to wait for each connection attempt (fractions allowed)' -r
complete -c chat-client -l send -d 'Send TEXT as a line, then quit, without reading standard input. Repeat the option to send several lines, in order (for cron jobs and CI hooks)' -r
complete -c chat-client -l allow-guest -d 'When the server refuses --nick (the nick is taken) or --room, go on anyway, as the guest nick it gave or in the lobby. Without it, no line is sent until the server has confirmed both, and a refusal sends nothing and exits with status 4 (from a terminal: stays connected and says so, sending nothing typed before the refusal). The same on reconnecting'
complete -c chat-client -l reconnect -d 'When the connection is lost, reconnect after growing, jittered delays (under 0.5 s at first, doubling up to 30 s at most), take the same nick and rejoin the same room. Lines typed meanwhile are sent once connected again'
complete -c chat-client -l timestamps -d 'Start each line shown with the local time, as [HH:MM]'
complete -c chat-client -s h -l help -d 'Print help (see more with \'--help\')'
complete -c chat-client -s V -l version -d 'Print version'
