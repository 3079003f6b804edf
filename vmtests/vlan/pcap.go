package vlan

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// The classic libpcap file format (not pcapng): a 24-byte global header, then
// per packet a 16-byte record header and the bytes. Every reader
// (tcpdump -r, Wireshark, scapy) takes it, and it is small enough to write by
// hand instead of pulling a capture library into the module.
const (
	pcapMagic      = 0xa1b2c3d4 // microsecond timestamps
	pcapSnapLen    = 65535
	linkTypeEthern = 1
)

type pcapWriter struct {
	w io.Writer
}

func newPcapWriter(w io.Writer) (*pcapWriter, error) {
	var h [24]byte
	// Little-endian throughout; readers detect byte order from the magic.
	binary.LittleEndian.PutUint32(h[0:], pcapMagic)
	binary.LittleEndian.PutUint16(h[4:], 2) // version 2.4
	binary.LittleEndian.PutUint16(h[6:], 4)
	// thiszone and sigfigs stay 0, as every modern writer leaves them.
	binary.LittleEndian.PutUint32(h[16:], pcapSnapLen)
	binary.LittleEndian.PutUint32(h[20:], linkTypeEthern)
	if _, err := w.Write(h[:]); err != nil {
		return nil, fmt.Errorf("write pcap header: %w", err)
	}
	return &pcapWriter{w: w}, nil
}

func (p *pcapWriter) writePacket(t time.Time, data []byte) error {
	n := len(data)
	if n > pcapSnapLen {
		n = pcapSnapLen
	}
	buf := make([]byte, 16+n)
	binary.LittleEndian.PutUint32(buf[0:], uint32(t.Unix()))
	binary.LittleEndian.PutUint32(buf[4:], uint32(t.Nanosecond()/1000))
	binary.LittleEndian.PutUint32(buf[8:], uint32(n))
	binary.LittleEndian.PutUint32(buf[12:], uint32(len(data)))
	copy(buf[16:], data[:n])
	// One write per packet so a reader tailing the file never sees half a record.
	if _, err := p.w.Write(buf); err != nil {
		return fmt.Errorf("write pcap packet: %w", err)
	}
	return nil
}

// PcapPacket is one packet read back from a pcap file.
type PcapPacket struct {
	Time time.Time
	Data []byte
}

// ReadPcap reads a little- or big-endian microsecond libpcap file, the format
// the switch writes; tests use it to check the file itself, not only the
// in-memory record.
func ReadPcap(r io.Reader) ([]PcapPacket, error) {
	var h [24]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, fmt.Errorf("read pcap header: %w", err)
	}
	var bo binary.ByteOrder
	switch {
	case binary.LittleEndian.Uint32(h[0:]) == pcapMagic:
		bo = binary.LittleEndian
	case binary.BigEndian.Uint32(h[0:]) == pcapMagic:
		bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("read pcap header: bad magic %x", h[0:4])
	}
	if lt := bo.Uint32(h[20:]); lt != linkTypeEthern {
		return nil, fmt.Errorf("read pcap header: link type %d, want Ethernet (1)", lt)
	}
	var pkts []PcapPacket
	for {
		var rh [16]byte
		if _, err := io.ReadFull(r, rh[:]); err == io.EOF {
			return pkts, nil
		} else if err != nil {
			return pkts, fmt.Errorf("read pcap record header: %w", err)
		}
		data := make([]byte, bo.Uint32(rh[8:]))
		if _, err := io.ReadFull(r, data); err != nil {
			return pkts, fmt.Errorf("read pcap record: %w", err)
		}
		t := time.Unix(int64(bo.Uint32(rh[0:])), int64(bo.Uint32(rh[4:]))*1000)
		pkts = append(pkts, PcapPacket{Time: t, Data: data})
	}
}
