// Command vtpm is the /init of the virtual-TPM test guest: on a stock
// Debian kernel, whose tpm_tis finds the TPM the VMM describes (in the
// ACPI tables on x86, the device tree on arm64), it uses the guest's TPM
// through /dev/tpmrm0 as an application would, with go-tpm, prints what
// it found and powers the VM off. The
// other guest programs use the standard library and x/sys only; this one
// needs a TPM 2.0 client, and go-tpm is the one Tandem uses.
//
// Each boot it reads PCR 16, extends it with SHA-256("tandem vtpm") and
// reads it again; counts its boots in an NV index it defines on the first
// (owner hierarchy, empty password); and derives the TCG reference ECC
// SRK from the owner hierarchy's seed, whose name depends on nothing but
// the seed. One line says it all:
//
//	TANDEM-VTPM boot=N pcr16-at-boot=HEX pcr16=HEX srk=HEX
//
// or, when a step fails, "TANDEM-VTPM fail <why>". A restart that powers
// the TPM off and on again starts PCR 16 from zeros; the boot count and
// the SRK's name show the TPM's persistent state survived it.
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
	"golang.org/x/sys/unix"

	"github.com/tandem-hv/tandem/guests/internal/guestinit"
)

const (
	marker  = "TANDEM-VTPM"
	device  = "/dev/tpmrm0"
	pcr     = 16
	bootsNV = tpm2.TPMHandle(0x01800016) // an owner NV index (TPM 2.0 Part 2, §7.4: 0x01800000-0x01BFFFFF)
)

func main() {
	if err := run(); err != nil {
		fmt.Println(marker, "fail", err)
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Println(marker, "fail power-off:", err)
	}
	select {}
}

func run() error {
	if err := guestinit.Boot(); err != nil {
		return err
	}
	// tpm_tis registers the device once it has probed the TPM.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(device); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s: the kernel found no TPM", device)
		}
	}
	tpm, err := linuxtpm.Open(device)
	if err != nil {
		return err
	}
	defer tpm.Close()
	before, err := readPCR(tpm)
	if err != nil {
		return err
	}
	d := sha256.Sum256([]byte("tandem vtpm"))
	_, err = tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: pcr, Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: d[:]}}},
	}.Execute(tpm)
	if err != nil {
		return fmt.Errorf("extending PCR %d: %w", pcr, err)
	}
	after, err := readPCR(tpm)
	if err != nil {
		return err
	}
	boots, err := countBoot(tpm)
	if err != nil {
		return err
	}
	srk, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHOwner,
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(tpm)
	if err != nil {
		return fmt.Errorf("creating the SRK: %w", err)
	}
	tpm2.FlushContext{FlushHandle: srk.ObjectHandle}.Execute(tpm)
	fmt.Printf("%s boot=%d pcr16-at-boot=%x pcr16=%x srk=%s\n", marker, boots, before, after, hex.EncodeToString(srk.Name.Buffer))
	return nil
}

func readPCR(tpm transport.TPM) ([]byte, error) {
	rsp, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
		{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(pcr)},
	}}}.Execute(tpm)
	if err != nil {
		return nil, fmt.Errorf("reading PCR %d: %w", pcr, err)
	}
	if len(rsp.PCRValues.Digests) != 1 {
		return nil, fmt.Errorf("reading PCR %d: no SHA-256 value", pcr)
	}
	return rsp.PCRValues.Digests[0].Buffer, nil
}

// countBoot adds this boot to the count the NV index keeps, defining the
// index on the first boot, and returns the count.
func countBoot(tpm transport.TPM) (uint64, error) {
	pub, err := tpm2.NVReadPublic{NVIndex: bootsNV}.Execute(tpm)
	var count uint64
	if err != nil {
		if !errors.Is(err, tpm2.TPMRCHandle) {
			return 0, fmt.Errorf("reading NV index %#x: %w", bootsNV, err)
		}
		_, err := tpm2.NVDefineSpace{
			AuthHandle: tpm2.TPMRHOwner,
			PublicInfo: tpm2.New2B(tpm2.TPMSNVPublic{
				NVIndex: bootsNV, NameAlg: tpm2.TPMAlgSHA256, DataSize: 8,
				Attributes: tpm2.TPMANV{OwnerWrite: true, OwnerRead: true, NT: tpm2.TPMNTOrdinary, NoDA: true},
			}),
		}.Execute(tpm)
		if err != nil {
			return 0, fmt.Errorf("defining NV index %#x: %w", bootsNV, err)
		}
		if pub, err = (tpm2.NVReadPublic{NVIndex: bootsNV}).Execute(tpm); err != nil {
			return 0, fmt.Errorf("reading NV index %#x: %w", bootsNV, err)
		}
	} else {
		rsp, err := tpm2.NVRead{
			AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
			NVIndex:    tpm2.NamedHandle{Handle: bootsNV, Name: pub.NVName},
			Size:       8,
		}.Execute(tpm)
		if err != nil || len(rsp.Data.Buffer) != 8 {
			return 0, fmt.Errorf("reading the boot count: %v", err)
		}
		count = binary.BigEndian.Uint64(rsp.Data.Buffer)
	}
	count++
	_, err = tpm2.NVWrite{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		NVIndex:    tpm2.NamedHandle{Handle: bootsNV, Name: pub.NVName},
		Data:       tpm2.TPM2BMaxNVBuffer{Buffer: binary.BigEndian.AppendUint64(nil, count)},
	}.Execute(tpm)
	if err != nil {
		return 0, fmt.Errorf("writing the boot count: %w", err)
	}
	return count, nil
}
