package vnc

// Linux key codes (include/uapi/linux/input-event-codes.h) for the X
// keysyms (X11/keysymdef.h) a VNC client sends in KeyEvent. A keysym
// names a symbol, a key code a key: the shifted and unshifted symbols of
// a key map to the same code, since the client sends Shift itself. The
// table is a US layout; the guest's keymap decides what each key means.

// keyCodes maps keysyms outside Latin-1's printable range.
var keyCodes = map[uint32]uint16{
	0xff08: 14,  // BackSpace → KEY_BACKSPACE
	0xff09: 15,  // Tab → KEY_TAB
	0xff0d: 28,  // Return → KEY_ENTER
	0xff13: 119, // Pause → KEY_PAUSE
	0xff14: 70,  // Scroll_Lock → KEY_SCROLLLOCK
	0xff15: 99,  // Sys_Req → KEY_SYSRQ
	0xff1b: 1,   // Escape → KEY_ESC
	0xff50: 102, // Home → KEY_HOME
	0xff51: 105, // Left → KEY_LEFT
	0xff52: 103, // Up → KEY_UP
	0xff53: 106, // Right → KEY_RIGHT
	0xff54: 108, // Down → KEY_DOWN
	0xff55: 104, // Page_Up → KEY_PAGEUP
	0xff56: 109, // Page_Down → KEY_PAGEDOWN
	0xff57: 107, // End → KEY_END
	0xff61: 99,  // Print → KEY_SYSRQ
	0xff63: 110, // Insert → KEY_INSERT
	0xff67: 127, // Menu → KEY_COMPOSE
	0xff7f: 69,  // Num_Lock → KEY_NUMLOCK
	0xff8d: 96,  // KP_Enter → KEY_KPENTER
	0xffe1: 42,  // Shift_L → KEY_LEFTSHIFT
	0xffe2: 54,  // Shift_R → KEY_RIGHTSHIFT
	0xffe3: 29,  // Control_L → KEY_LEFTCTRL
	0xffe4: 97,  // Control_R → KEY_RIGHTCTRL
	0xffe5: 58,  // Caps_Lock → KEY_CAPSLOCK
	0xffe7: 125, // Meta_L → KEY_LEFTMETA
	0xffe8: 126, // Meta_R → KEY_RIGHTMETA
	0xffe9: 56,  // Alt_L → KEY_LEFTALT
	0xffea: 100, // Alt_R → KEY_RIGHTALT
	0xffeb: 125, // Super_L → KEY_LEFTMETA
	0xffec: 126, // Super_R → KEY_RIGHTMETA
	0xfe03: 100, // ISO_Level3_Shift (AltGr) → KEY_RIGHTALT
	0xffff: 111, // Delete → KEY_DELETE
}

// asciiKeys maps printable ASCII, the keysyms 0x20 to 0x7e, to the key
// that types it on a US keyboard.
var asciiKeys = [0x7f]uint16{
	' ': 57, '\'': 40, '"': 40, ',': 51, '<': 51, '-': 12, '_': 12, '.': 52, '>': 52, '/': 53, '?': 53,
	'0': 11, ')': 11, '1': 2, '!': 2, '2': 3, '@': 3, '3': 4, '#': 4, '4': 5, '$': 5,
	'5': 6, '%': 6, '6': 7, '^': 7, '7': 8, '&': 8, '8': 9, '*': 9, '9': 10, '(': 10,
	';': 39, ':': 39, '=': 13, '+': 13, '[': 26, '{': 26, '\\': 43, '|': 43, ']': 27, '}': 27,
	'`': 41, '~': 41,
	'a': 30, 'b': 48, 'c': 46, 'd': 32, 'e': 18, 'f': 33, 'g': 34, 'h': 35, 'i': 23, 'j': 36,
	'k': 37, 'l': 38, 'm': 50, 'n': 49, 'o': 24, 'p': 25, 'q': 16, 'r': 19, 's': 31, 't': 20,
	'u': 22, 'v': 47, 'w': 17, 'x': 45, 'y': 21, 'z': 44,
}

// Function keys: F1 to F10 are KEY_F1 (59) on; F11 and F12 are 87, 88.
const (
	keysymF1  = 0xffbe
	keysymF12 = 0xffc9
)

// KeyCode returns the Linux key code of an X keysym, or 0 for one
// without a key here.
func KeyCode(keysym uint32) uint16 {
	switch {
	case keysym >= 'A' && keysym <= 'Z':
		return asciiKeys[keysym-'A'+'a']
	case keysym >= 0x20 && keysym < 0x7f:
		return asciiKeys[keysym]
	case keysym >= keysymF1 && keysym <= keysymF1+9:
		return uint16(59 + keysym - keysymF1)
	case keysym == keysymF12-1 || keysym == keysymF12:
		return uint16(87 + keysym - (keysymF12 - 1))
	}
	return keyCodes[keysym]
}
