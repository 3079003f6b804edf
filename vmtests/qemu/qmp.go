package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
)

// qmp is a minimal QEMU Machine Protocol client: one command at a time,
// asynchronous events skipped. It is enough for quit, set_link and
// system_reset, which is all the failover scenarios need.
type qmp struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

type qmpReply struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string          `json:"event"`
	QMP   json.RawMessage `json:"QMP"`
}

// dialQMP connects and leaves capabilities negotiation, after which QEMU
// accepts commands.
func dialQMP(path string) (*qmp, error) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return nil, fmt.Errorf("connect to qmp: %w", err)
	}
	q := &qmp{conn: conn, r: bufio.NewReader(conn)}
	var greeting qmpReply
	if err := q.read(&greeting); err != nil || greeting.QMP == nil {
		conn.Close()
		return nil, fmt.Errorf("read qmp greeting: %w", errors.Join(err, errors.New("no greeting")))
	}
	if _, err := q.execute(context.Background(), "qmp_capabilities", nil); err != nil {
		conn.Close()
		return nil, err
	}
	return q, nil
}

func (q *qmp) read(v *qmpReply) error {
	line, err := q.r.ReadBytes('\n')
	if err != nil {
		return err
	}
	return json.Unmarshal(line, v)
}

func (q *qmp) execute(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if dl, ok := ctx.Deadline(); ok {
		q.conn.SetDeadline(dl)
		defer q.conn.SetDeadline(timeZero)
	}
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode qmp %s: %w", cmd, err)
	}
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("send qmp %s: %w", cmd, err)
	}
	for {
		var rep qmpReply
		if err := q.read(&rep); err != nil {
			return nil, fmt.Errorf("read qmp %s reply: %w", cmd, err)
		}
		if rep.Event != "" {
			continue
		}
		if rep.Error != nil {
			return nil, fmt.Errorf("qmp %s: %s: %s", cmd, rep.Error.Class, rep.Error.Desc)
		}
		return rep.Return, nil
	}
}

func (q *qmp) close() error { return q.conn.Close() }
