package vmm

import "io"

// startConsoleInput forwards the console's input, if any, to a device.
func (vm *VM) startConsoleInput(deliver func([]byte)) {
	in := vm.cfg.Console.In
	if in == nil {
		return
	}
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := in.Read(buf)
			if n > 0 {
				deliver(append([]byte(nil), buf[:n]...))
			}
			if err != nil {
				if err != io.EOF {
					vm.warn.Printf("console input: %v", err)
				}
				return
			}
		}
	}()
}
