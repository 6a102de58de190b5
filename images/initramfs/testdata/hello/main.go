// Command hello is a Go program the initramfs tests build into an image.
package main

import "fmt"

func main() { fmt.Println("hello from the initramfs") }
