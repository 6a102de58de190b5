package system

import (
	"errors"
	"net"
	"testing"
	"time"
)

// TestAnsweredConn checks what the supervisor reads from a VMM's in
// socket when the guest's side closes the stream before the VMM answers:
// a refused Dial closes its stream first, and the supervisor must still
// read why, not an end of file.
func TestAnsweredConn(t *testing.T) {
	tests := []struct {
		name       string
		closeFirst bool  // the stream is closed before the answer
		dialErr    error // Dial's result
		want       error // what answer() gives the supervisor
		wantEOF    bool  // the connection ends after the answer
	}{
		{"refused, closed first", true, errors.New("connection refused by the guest"), errors.New("connection refused by the guest"), true},
		{"refused", false, errors.New("the guest's vsock driver is not ready"), errors.New("the guest's vsock driver is not ready"), true},
		{"accepted", false, nil, nil, false},
		{"accepted, then reset before the answer", true, nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vmmSide, supSide := net.Pipe()
			defer supSide.Close()
			a := &answeredConn{Conn: vmmSide, ready: make(chan struct{})}
			go func() {
				if tt.closeFirst {
					a.Close()
				}
				a.answer(tt.dialErr)
			}()
			supSide.SetDeadline(time.Now().Add(5 * time.Second))
			err := answer(supSide)
			if (err == nil) != (tt.want == nil) || (err != nil && err.Error() != tt.want.Error()) {
				t.Fatalf("answer() = %v, want %v", err, tt.want)
			}
			supSide.SetDeadline(time.Now().Add(time.Second))
			_, rerr := supSide.Read(make([]byte, 1))
			if ended := rerr != nil && !isTimeout(rerr); ended != tt.wantEOF {
				t.Errorf("after the answer, Read() = %v, want the connection ended: %v", rerr, tt.wantEOF)
			}
		})
	}
}

// isTimeout tells a connection still open (a read timed out) from one
// that ended.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
