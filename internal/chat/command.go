package chat

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/magpie-im/magpie/proto/wire"
)

type cmdKind int

const (
	cmdNone         cmdKind = iota // empty line
	cmdSend                        // NAME;;text or @NAME text
	cmdText                        // plain text to the current conversation
	cmdTo                          // :to NAME
	cmdOnline                      // :olu
	cmdHistory                     // :history [n]
	cmdRead                        // :read
	cmdHelp                        // :help
	cmdQuit                        // :q, :q!, :quit
	cmdSearch                      // :q WORDS
	cmdGroups                      // :groups
	cmdGroup                       // :g NAME-OR-ID
	cmdCreate                      // :create NAME user…
	cmdInvite                      // :invite user…
	cmdKick                        // :kick user
	cmdLeave                       // :leave
	cmdFriends                     // :friends
	cmdAdd                         // :add NAME
	cmdAccept                      // :accept NAME
	cmdDecline                     // :decline NAME
	cmdBlock                       // :block NAME
	cmdUnblock                     // :unblock NAME
	cmdRecall                      // :recall [seq]
	cmdFile                        // :file PATH
	cmdAll                         // :all text
	cmdReads                       // :reads [seq]
	cmdEdit                        // :edit [#seq] text
	cmdSessions                    // :sessions
	cmdEndSession                  // :end-session ID
	cmdLogoutAll                   // :logout-all
	cmdDelete                      // :delete
	cmdClear                       // :clear
	cmdPrefixUsers                 // :pu PREFIX
	cmdDelay                       // :delay SECONDS text
	cmdScheduled                   // :scheduled
	cmdCancel                      // :cancel ID
	cmdRemark                      // :remark NAME [alias]
	cmdFriendGroup                 // :fgroup NAME [group]
	cmdFriendGroups                // :fgroups
	cmdPolicy                      // :policy approve|anyone|nobody
	cmdJoin                        // :join GROUP-ID
	cmdRequests                    // :requests
	cmdApprove                     // :approve NAME
	cmdReject                      // :reject NAME
	cmdNotice                      // :notice text
	cmdInfo                        // :info
	cmdEmoji                       // :emoji [WORD]
	cmdGet                         // :get FILE_ID [PATH]
	cmdReply                       // :reply SEQ text
	cmdMembers                     // :members
	cmdRole                        // :role NAME admin|member
	cmdOwner                       // :owner NAME
	cmdMute                        // :mute NAME [MINUTES]
	cmdUnmute                      // :unmute NAME
	cmdMuteAll                     // :mute-all [MINUTES]
	cmdUnmuteAll                   // :unmute-all
	cmdRename                      // :rename NAME
	cmdDissolve                    // :dissolve
)

type command struct {
	kind  cmdKind
	to    string   // cmdSend, cmdTo; cmdGroup: name or id; cmdCreate: the group's name; user commands: the user
	text  string   // cmdSend, cmdText, cmdAll, cmdEdit, cmdReply; cmdFile, cmdGet: the path; cmdEmoji, cmdRole: the word
	n     int      // cmdHistory; cmdDelay: seconds; cmdMute, cmdMuteAll: minutes
	seq   uint64   // cmdRecall, cmdReads, cmdEdit, cmdReply; 0: my last message
	users []string // cmdCreate, cmdInvite
}

const defaultHistory = 20

const helpText = `commands:
  NAME;;text          send text to NAME
  @NAME text          send text to NAME
  :to NAME            talk to NAME; plain lines then go to NAME
  :g GROUP            talk in a group (by name or id); plain lines then go to the group
  text                send to the current conversation (see :to and :g)
  :all text           broadcast text to everyone online
  :file PATH          upload a file and send it to the current conversation
  :get FILE_ID [PATH] download a file (id=… of a file message) to PATH, a directory, or here
                      under its own name; an existing file is never overwritten
  :recall [seq]       recall a message of the current conversation (default: my last one)
  :edit [#seq] text   replace the text of a message of mine (default: my last one), within the
                      server's --recall-window (2 minutes by default; :recall has the same)
  :reply SEQ text     answer message #SEQ of the current conversation (shown "(reply to #SEQ)")
  :history [n]        show the last n messages (default 20) of the current conversation
  :read               mark the current conversation read
  :reads [seq]        who read a message of the current conversation (default: my last one)
  :delete             hide the current conversation from my list until a new message arrives
  :clear              the same, and clear its history for me (the others keep theirs)
  :q WORDS            search my messages for WORDS (every word must occur;
                      Chinese and other scripts without spaces work too)
  :olu                list online users (my contacts, unless the server shows everyone)
  :pu PREFIX          online users whose names start with PREFIX
  :delay SECONDS text send text to the current conversation SECONDS from now (the server keeps it)
  :scheduled          list my messages waiting to be sent
  :cancel ID          cancel a message waiting to be sent
  :groups             list my groups
  :create NAME user…  create a group with these members and talk in it
  :invite user…       add users to the current group
  :kick user          remove a user from the current group
  :leave              leave the current group
  :join GROUP-ID      join an open group, or ask to join one that needs approval
  :requests           list who asks to join the current group (owner and admins)
  :approve NAME       let NAME join the current group (:reject NAME to refuse)
  :notice text        set the current group's notice (owner and admins)
  :members            list the current group's members, their roles and mutes
  :role NAME ROLE     make NAME an admin or a plain member (ROLE: admin or member; owner only)
  :owner NAME         hand the current group to NAME (you stay an admin; owner only)
  :mute NAME [MIN]    keep NAME from sending for MIN minutes (default 60; owner and admins)
  :unmute NAME        lift NAME's mute (:mute-all [MIN] and :unmute-all for everyone but admins)
  :rename NAME        rename the current group (owner and admins)
  :dissolve           end the current group for everyone (owner only)
  :friends            list friends, requests and blocked users
  :add NAME           ask NAME to be friends
  :accept NAME        accept NAME's friend request
  :decline NAME       decline NAME's friend request
  :block NAME         refuse NAME's private messages
  :unblock NAME       lift a block
  :remark NAME [text] my alias for friend NAME (none: clear it)
  :fgroup NAME [group] put friend NAME in one of my friend groups (none: in none)
  :fgroups            list my friend groups and their friends
  :policy WHO         who may add me as a friend: approve (ask me; the default), anyone, nobody
  :info               who and where I am: user, device, server, gateway, connection, current chat
  :emoji [WORD]       list the :shortcodes: that messages turn into emoji (WORD filters them)
  :sessions           list my sessions (devices logged in)
  :end-session ID     end one of my sessions (its connections close)
  :logout-all         end every session of mine, this one too, and quit
  :help               this help
  :q, :q!, :quit      quit (after unsent messages are acknowledged)

Messages show their seq first ("#12 [15:04:05] bob: hi"): :recall, :edit, :reads
and :reply take it. Failed commands print one line, "error: COMMAND: what went wrong".
Live notices print as they happen: "* alice wants to be your friend: :accept alice",
join requests to groups I run, scheduled messages that could not be sent.`

// parse reads one input line. Lines starting with ':' are commands; a
// line starting with '@', or with a valid user name followed by ";;", is a
// message to that user; anything else is text for the current conversation.
func parse(line string) (command, error) {
	cmd, err := parseLine(line)
	if err == nil && textCommands[cmd.kind] {
		cmd.text = emojify(cmd.text)
	}
	return cmd, err
}

func parseLine(line string) (command, error) {
	line = strings.TrimSpace(line)
	switch {
	case line == "":
		return command{kind: cmdNone}, nil
	case strings.HasPrefix(line, ":"):
		return parseColon(line)
	case strings.HasPrefix(line, "@"):
		name, text, _ := strings.Cut(line[1:], " ")
		text = strings.TrimSpace(text)
		if err := wire.ValidName(name); err != nil {
			return command{}, fmt.Errorf("@%s: %v", name, err)
		}
		if text == "" {
			return command{}, fmt.Errorf("@%s: nothing to send (usage: @NAME text)", name)
		}
		return command{kind: cmdSend, to: name, text: text}, nil
	}
	if name, text, ok := strings.Cut(line, ";;"); ok && wire.ValidName(strings.TrimSpace(name)) == nil {
		text = strings.TrimSpace(text)
		if text == "" {
			return command{}, fmt.Errorf("%s;;: nothing to send (usage: NAME;;text)", name)
		}
		return command{kind: cmdSend, to: strings.TrimSpace(name), text: text}, nil
	}
	return command{kind: cmdText, text: line}, nil
}

// userCommands take exactly one user name.
var userCommands = map[string]cmdKind{
	":to": cmdTo, ":kick": cmdKick, ":add": cmdAdd, ":accept": cmdAccept,
	":decline": cmdDecline, ":block": cmdBlock, ":unblock": cmdUnblock,
	":approve": cmdApprove, ":reject": cmdReject, ":owner": cmdOwner, ":unmute": cmdUnmute,
}

// simpleCommands take no arguments.
var simpleCommands = map[string]cmdKind{
	":olu": cmdOnline, ":read": cmdRead, ":help": cmdHelp, ":q!": cmdQuit, ":quit": cmdQuit,
	":groups": cmdGroups, ":leave": cmdLeave, ":friends": cmdFriends,
	":sessions": cmdSessions, ":logout-all": cmdLogoutAll, ":delete": cmdDelete, ":clear": cmdClear,
	":scheduled": cmdScheduled, ":fgroups": cmdFriendGroups, ":requests": cmdRequests,
	":info": cmdInfo, ":members": cmdMembers, ":unmute-all": cmdUnmuteAll, ":dissolve": cmdDissolve,
}

// textCommands carry message text, in which :shortcodes: become emoji.
var textCommands = map[cmdKind]bool{cmdSend: true, cmdText: true, cmdAll: true, cmdDelay: true, cmdEdit: true, cmdReply: true}

// defaultMuteMinutes is :mute's and :mute-all's length without MINUTES.
const defaultMuteMinutes = 60

// maxMuteMinutes bounds MINUTES (a year).
const maxMuteMinutes = 366 * 24 * 60

func parseColon(line string) (command, error) {
	fields := strings.Fields(line)
	word, args := fields[0], fields[1:]
	rest := strings.TrimSpace(strings.TrimPrefix(line, word)) // the rest of the line, spaces kept
	if k, ok := userCommands[word]; ok {
		if len(args) != 1 {
			return command{}, fmt.Errorf("usage: %s NAME", word)
		}
		if err := wire.ValidName(args[0]); err != nil {
			return command{}, fmt.Errorf("%s %s: %v", word, args[0], err)
		}
		return command{kind: k, to: args[0]}, nil
	}
	if k, ok := simpleCommands[word]; ok {
		if len(args) > 0 {
			return command{}, fmt.Errorf("%s takes no arguments", word)
		}
		return command{kind: k}, nil
	}
	switch word {
	case ":q": // alone it quits, as it always did; with words it searches
		if rest == "" {
			return command{kind: cmdQuit}, nil
		}
		return command{kind: cmdSearch, text: rest}, nil
	case ":delay":
		secs, text, _ := strings.Cut(rest, " ")
		text = strings.TrimSpace(text)
		n, err := strconv.Atoi(secs)
		if err != nil || n < 1 {
			return command{}, fmt.Errorf("usage: :delay SECONDS text (SECONDS a whole number from 1)")
		}
		if text == "" {
			return command{}, fmt.Errorf(":delay %d: nothing to send (usage: :delay SECONDS text)", n)
		}
		return command{kind: cmdDelay, n: n, text: text}, nil
	case ":cancel":
		if len(args) != 1 {
			return command{}, fmt.Errorf("usage: :cancel ID (see :scheduled)")
		}
		v, err := strconv.ParseUint(strings.TrimPrefix(args[0], "#"), 10, 63)
		if err != nil || v == 0 {
			return command{}, fmt.Errorf(":cancel: ID must be a positive number, not %q", args[0])
		}
		return command{kind: cmdCancel, seq: v}, nil
	case ":remark", ":fgroup":
		k := map[string]cmdKind{":remark": cmdRemark, ":fgroup": cmdFriendGroup}[word]
		if len(args) < 1 {
			return command{}, fmt.Errorf("usage: %s NAME [text]", word)
		}
		if err := wire.ValidName(args[0]); err != nil {
			return command{}, fmt.Errorf("%s %s: %v", word, args[0], err)
		}
		return command{kind: k, to: args[0], text: strings.TrimSpace(strings.TrimPrefix(rest, args[0]))}, nil
	case ":join":
		if len(args) != 1 {
			return command{}, fmt.Errorf("usage: :join GROUP-ID")
		}
		return command{kind: cmdJoin, to: args[0]}, nil
	case ":notice":
		if rest == "" {
			return command{}, fmt.Errorf("usage: :notice text")
		}
		return command{kind: cmdNotice, text: rest}, nil
	case ":policy":
		if len(args) != 1 || (args[0] != "approve" && args[0] != "anyone" && args[0] != "nobody") {
			return command{}, fmt.Errorf("usage: :policy approve|anyone|nobody")
		}
		return command{kind: cmdPolicy, text: args[0]}, nil
	case ":pu":
		if len(args) != 1 {
			return command{}, fmt.Errorf("usage: :pu PREFIX")
		}
		if len(args[0]) > wire.MaxUsername || strings.Trim(args[0], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != "" {
			return command{}, fmt.Errorf(":pu %s: a prefix is at most %d of A-Z a-z 0-9 _ -", args[0], wire.MaxUsername)
		}
		return command{kind: cmdPrefixUsers, to: args[0]}, nil
	case ":history":
		n := defaultHistory
		if len(args) > 1 {
			return command{}, fmt.Errorf("usage: :history [n]")
		}
		if len(args) == 1 {
			v, err := strconv.Atoi(args[0])
			if err != nil || v < 1 || v > wire.MaxPageLimit {
				return command{}, fmt.Errorf(":history: n must be a number from 1 to %d", wire.MaxPageLimit)
			}
			n = v
		}
		return command{kind: cmdHistory, n: n}, nil
	case ":g":
		if len(args) != 1 {
			return command{}, fmt.Errorf("usage: :g NAME-OR-ID")
		}
		return command{kind: cmdGroup, to: args[0]}, nil
	case ":create", ":invite":
		users := args
		cmd := command{kind: cmdInvite}
		if word == ":create" {
			if len(args) < 1 {
				return command{}, fmt.Errorf("usage: :create NAME user…")
			}
			cmd = command{kind: cmdCreate, to: args[0]}
			users = args[1:]
		} else if len(args) == 0 {
			return command{}, fmt.Errorf("usage: :invite user…")
		}
		for _, u := range users {
			if err := wire.ValidName(u); err != nil {
				return command{}, fmt.Errorf("%s: %s: %v", word, u, err)
			}
		}
		cmd.users = users
		return cmd, nil
	case ":recall", ":reads":
		k := map[string]cmdKind{":recall": cmdRecall, ":reads": cmdReads}[word]
		if len(args) > 1 {
			return command{}, fmt.Errorf("usage: %s [seq]", word)
		}
		var seq uint64
		if len(args) == 1 {
			v, err := strconv.ParseUint(strings.TrimPrefix(args[0], "#"), 10, 64)
			if err != nil || v == 0 {
				return command{}, fmt.Errorf("%s: seq must be a positive number, not %q", word, args[0])
			}
			seq = v
		}
		return command{kind: k, seq: seq}, nil
	case ":edit":
		// A seq must carry its '#': ":edit 42 apples" edits my last
		// message to "42 apples".
		var seq uint64
		if len(args) > 0 && strings.HasPrefix(args[0], "#") {
			v, err := strconv.ParseUint(args[0][1:], 10, 64)
			if err != nil || v == 0 {
				return command{}, fmt.Errorf(":edit: seq must be a positive number, not %q", args[0])
			}
			seq = v
			rest = strings.TrimSpace(strings.TrimPrefix(rest, args[0]))
		}
		if rest == "" {
			return command{}, fmt.Errorf("usage: :edit [#seq] text")
		}
		return command{kind: cmdEdit, seq: seq, text: rest}, nil
	case ":end-session":
		if len(args) != 1 {
			return command{}, fmt.Errorf("usage: :end-session ID (see :sessions)")
		}
		return command{kind: cmdEndSession, to: args[0]}, nil
	case ":file":
		if rest == "" {
			return command{}, fmt.Errorf("usage: :file PATH")
		}
		return command{kind: cmdFile, text: rest}, nil
	case ":emoji":
		if len(args) > 1 {
			return command{}, fmt.Errorf("usage: :emoji [WORD]")
		}
		return command{kind: cmdEmoji, text: rest}, nil
	case ":get":
		id, path, _ := strings.Cut(rest, " ")
		if id == "" {
			return command{}, fmt.Errorf("usage: :get FILE_ID [PATH]")
		}
		return command{kind: cmdGet, to: id, text: strings.TrimSpace(path)}, nil
	case ":reply":
		if len(args) < 2 {
			return command{}, fmt.Errorf("usage: :reply SEQ text")
		}
		v, err := strconv.ParseUint(strings.TrimPrefix(args[0], "#"), 10, 64)
		if err != nil || v == 0 {
			return command{}, fmt.Errorf(":reply: seq must be a positive number, not %q (usage: :reply SEQ text)", args[0])
		}
		return command{kind: cmdReply, seq: v, text: strings.TrimSpace(strings.TrimPrefix(rest, args[0]))}, nil
	case ":role":
		if len(args) != 2 || (args[1] != "admin" && args[1] != "member") {
			return command{}, fmt.Errorf("usage: :role NAME admin|member (:owner NAME hands the group over)")
		}
		if err := wire.ValidName(args[0]); err != nil {
			return command{}, fmt.Errorf(":role %s: %v", args[0], err)
		}
		return command{kind: cmdRole, to: args[0], text: args[1]}, nil
	case ":mute", ":mute-all":
		cmd := command{kind: cmdMuteAll, n: defaultMuteMinutes}
		mins := args
		if word == ":mute" {
			if len(args) < 1 || len(args) > 2 {
				return command{}, fmt.Errorf("usage: :mute NAME [MINUTES]")
			}
			if err := wire.ValidName(args[0]); err != nil {
				return command{}, fmt.Errorf(":mute %s: %v", args[0], err)
			}
			cmd = command{kind: cmdMute, to: args[0], n: defaultMuteMinutes}
			mins = args[1:]
		} else if len(args) > 1 {
			return command{}, fmt.Errorf("usage: :mute-all [MINUTES]")
		}
		if len(mins) == 1 {
			v, err := strconv.Atoi(mins[0])
			if err != nil || v < 1 || v > maxMuteMinutes {
				return command{}, fmt.Errorf("%s: MINUTES must be a whole number from 1 to %d, not %q", word, maxMuteMinutes, mins[0])
			}
			cmd.n = v
		}
		return cmd, nil
	case ":rename":
		if rest == "" {
			return command{}, fmt.Errorf("usage: :rename NAME")
		}
		return command{kind: cmdRename, text: rest}, nil
	case ":all":
		if rest == "" {
			return command{}, fmt.Errorf("usage: :all text")
		}
		return command{kind: cmdAll, text: rest}, nil
	}
	return command{}, fmt.Errorf("unknown command %s (try :help)", word)
}
