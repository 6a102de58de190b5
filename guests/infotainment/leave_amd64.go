package main

// leaveGuest executes CPUID (leave_amd64.s).
func leaveGuest()
