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
)

type command struct {
	kind  cmdKind
	to    string   // cmdSend, cmdTo; cmdGroup: name or id; cmdCreate: the group's name; user commands: the user
	text  string   // cmdSend, cmdText, cmdAll, cmdEdit; cmdFile: the path
	n     int      // cmdHistory
	seq   uint64   // cmdRecall, cmdReads, cmdEdit; 0: my last message
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
  :recall [seq]       recall a message of the current conversation (default: my last one)
  :edit [#seq] text   replace the text of a message of mine (default: my last one)
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
  :sessions           list my sessions (devices logged in)
  :end-session ID     end one of my sessions (its connections close)
  :logout-all         end every session of mine, this one too, and quit
  :help               this help
  :q, :q!, :quit      quit (after unsent messages are acknowledged)`

// parse reads one input line. Lines starting with ':' are commands; a
// line starting with '@', or with a valid user name followed by ";;", is a
// message to that user; anything else is text for the current conversation.
func parse(line string) (command, error) {
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
	":approve": cmdApprove, ":reject": cmdReject,
}

// simpleCommands take no arguments.
var simpleCommands = map[string]cmdKind{
	":olu": cmdOnline, ":read": cmdRead, ":help": cmdHelp, ":q!": cmdQuit, ":quit": cmdQuit,
	":groups": cmdGroups, ":leave": cmdLeave, ":friends": cmdFriends,
	":sessions": cmdSessions, ":logout-all": cmdLogoutAll, ":delete": cmdDelete, ":clear": cmdClear,
	":scheduled": cmdScheduled, ":fgroups": cmdFriendGroups, ":requests": cmdRequests,
}

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
	case ":all":
		if rest == "" {
			return command{}, fmt.Errorf("usage: :all text")
		}
		return command{kind: cmdAll, text: rest}, nil
	}
	return command{}, fmt.Errorf("unknown command %s (try :help)", word)
}
