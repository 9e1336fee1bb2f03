//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestREADMEMQTTDemo runs the README's three-line MQTT demo as written
// (its ports swapped for free ones, since a test cannot take 8080 and
// 1884): the server line's flags start the binary, after the tour's
// alice and bob registered; the curl, jq and mosquitto_pub lines run in
// bash, and alice's terminal shows bob's sensor's message; then the
// mosquitto_sub of the text below the block prints alice's answer.
func TestREADMEMQTTDemo(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq", "mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the README's MQTT demo: %v", tool, err)
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## Devices over MQTT")
	if !ok {
		t.Fatal("README.md has no 'Devices over MQTT' section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	block := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(section)
	if block == nil {
		t.Fatal("the README's MQTT section has no sh block")
	}
	lines := strings.Split(strings.TrimSpace(block[1]), "\n")
	if len(lines) != 3 {
		t.Fatalf("the README's MQTT demo has %d lines, want 3:\n%s", len(lines), block[1])
	}
	serveLine := regexp.MustCompile(`^go run \./cmd/magpie serve --mqtt (127\.0\.0\.1:(\d+))$`).FindStringSubmatch(lines[0])
	if serveLine == nil {
		t.Fatalf("the demo's first line is %q, want go run ./cmd/magpie serve --mqtt 127.0.0.1:PORT", lines[0])
	}
	docPort := serveLine[2]
	mqttAddr := freeAddr(t)
	_, port, _ := net.SplitHostPort(mqttAddr)
	s := startServer(t, t.TempDir(), "--mqtt", mqttAddr)
	waitOutput(t, s.out, "the MQTT listener", regexp.MustCompile(`MQTT for devices: `+regexp.QuoteMeta(mqttAddr)))

	// The tour's accounts, and alice's terminal.
	runChat(t, s, "bob", "secret2", ":q\n", "--register")
	runChat(t, s, "alice", "secret1", ":q\n", "--register")
	alice := startChat(t, s, "alice", "secret1")

	swap := func(line string) string {
		line = strings.ReplaceAll(line, "localhost:8080", s.http)
		return strings.ReplaceAll(line, "-p "+docPort+" ", "-p "+port+" ")
	}
	script := swap(lines[1]) + "\n" + swap(lines[2]) + "\necho \"TOKEN=$TOKEN\"\n"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("the demo's lines 2 and 3: %v\n%s", err, out)
	}
	waitOutput(t, alice.out, "alice sees the sensor's message", regexp.MustCompile(`\] bob: temperature 21\.5`))
	token := regexp.MustCompile(`(?m)^TOKEN=(\S+)$`).FindStringSubmatch(string(out))
	if token == nil {
		t.Fatalf("no token from the demo's curl line:\n%s", out)
	}

	// The subscription of the text below the block (-C 1: exit after one).
	subText := regexp.MustCompile("`(mosquitto_sub [^`]*)`").FindStringSubmatch(section)
	if subText == nil {
		t.Fatal("the README's MQTT section names no mosquitto_sub command")
	}
	subLine := strings.Join(strings.Fields(swap(subText[1])), " ")
	subLine = strings.Replace(subLine, "mosquitto_sub", "stdbuf -oL mosquitto_sub -d -C 1", 1)
	sub := exec.CommandContext(ctx, "bash", "-c", subLine)
	sub.Env = append(os.Environ(), "TOKEN="+token[1])
	subOut := &output{}
	sub.Stdout, sub.Stderr = subOut, subOut
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, subOut, "the subscription", regexp.MustCompile(`received SUBACK`))
	alice.send(t, "bob;;set point 19")
	if err := sub.Wait(); err != nil {
		t.Fatalf("%s: %v\n%s", subLine, err, subOut.String())
	}
	var msg map[string]any
	m := regexp.MustCompile(`(?m)^\{.*\}$`).FindString(subOut.String())
	if err := json.Unmarshal([]byte(m), &msg); err != nil || msg["text"] != "set point 19" || msg["sender"] != "alice" {
		t.Fatalf("mosquitto_sub printed %q (%v)", subOut.String(), err)
	}
}
