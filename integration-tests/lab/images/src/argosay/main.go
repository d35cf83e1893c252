// Command argosay is the lab's stand-in for the argoproj/argosay test image.
//
//	argosay                          prints "hello argo"
//	argosay echo [MESSAGE [FILE]]    prints MESSAGE (default "hello argo"), or writes it to FILE
//	argosay cat FILE...              prints the files
//	argosay sleep DURATION           sleeps (Go duration such as 10s, or plain seconds)
//	argosay exit [CODE]              exits with CODE (default 0)
//	argosay assert_contains FILE S   fails unless FILE contains S
//	argosay assert_exists FILE       fails unless FILE exists
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const defaultMessage = "hello argo"

func main() {
	if err := run(os.Args[1:]); err != nil {
		if e, ok := err.(exitCode); ok {
			os.Exit(int(e))
		}
		fmt.Fprintln(os.Stderr, "argosay:", err)
		os.Exit(1)
	}
}

type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func run(args []string) error {
	if len(args) == 0 {
		return echo(nil)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "echo":
		return echo(rest)
	case "cat":
		for _, f := range rest {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			os.Stdout.Write(b)
		}
		return nil
	case "sleep":
		if len(rest) != 1 {
			return fmt.Errorf("usage: sleep DURATION")
		}
		d, err := time.ParseDuration(rest[0])
		if err != nil {
			n, err2 := strconv.ParseFloat(rest[0], 64)
			if err2 != nil {
				return err
			}
			d = time.Duration(n * float64(time.Second))
		}
		time.Sleep(d)
		return nil
	case "exit":
		if len(rest) == 0 {
			return nil
		}
		n, err := strconv.Atoi(rest[0])
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		return exitCode(n)
	case "assert_contains":
		if len(rest) != 2 {
			return fmt.Errorf("usage: assert_contains FILE CONTENT")
		}
		b, err := os.ReadFile(rest[0])
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), rest[1]) {
			return fmt.Errorf("%q does not contain %q", rest[0], rest[1])
		}
		return nil
	case "assert_exists":
		if len(rest) != 1 {
			return fmt.Errorf("usage: assert_exists FILE")
		}
		_, err := os.Stat(rest[0])
		return err
	default:
		return fmt.Errorf("unknown command %q", cmd)
	}
}

func echo(args []string) error {
	msg := defaultMessage
	if len(args) > 0 {
		msg = args[0]
	}
	if len(args) < 2 || args[1] == "/dev/stdout" {
		fmt.Println(msg)
		return nil
	}
	if args[1] == "/dev/stderr" {
		fmt.Fprintln(os.Stderr, msg)
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(args[1]), 0o777); err != nil {
		return err
	}
	return os.WriteFile(args[1], []byte(msg), 0o666)
}
