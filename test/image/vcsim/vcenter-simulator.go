// Command pke-vcenter-simulator is test infrastructure: a vCenter API simulator (govmomi's
// simulator.VPX model over TLS) that CI runs `packer build` against, and a client that
// reads a VM back from the simulator's API so tests do not take Packer's word for it.
//
//	pke-vcenter-simulator serve [FLAGS]    prints one JSON line {url, server, username, password}
//	                                       and serves until SIGTERM/SIGINT or stdin closes;
//	                                       -listen HOST:PORT, -username/-password (only these log in),
//	                                       -cert/-key PEM files (instead of the built-in weak certificate)
//	pke-vcenter-simulator inspect URL PATH prints the VM at inventory PATH as JSON
//
// Built in GOPATH mode against Debian's golang-github-vmware-govmomi-dev.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/simulator"
	_ "github.com/vmware/govmomi/vapi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "inspect":
		if len(os.Args) != 4 {
			usage()
		}
		err = inspect(os.Args[2], os.Args[3])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pke-vcenter-simulator: %v\n", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: pke-vcenter-simulator serve | inspect URL INVENTORY_PATH")
	os.Exit(2)
}

func serve(args []string) error {
	flags := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := flags.String("listen", "127.0.0.1:0", "HOST:PORT to listen on")
	onlyUser := flags.String("username", "", "the only user that logs in (default: any non-empty user and password)")
	onlyPassword := flags.String("password", "", "that user's password")
	certFile := flags.String("cert", "", "PEM serving certificate")
	keyFile := flags.String("key", "", "PEM key of -cert")
	if err := flags.Parse(args); err != nil {
		return err
	}
	model := simulator.VPX()
	if err := model.Create(); err != nil {
		return err
	}
	defer model.Remove()

	model.Service.Listen = &url.URL{Host: *listen}
	if *onlyUser != "" {
		model.Service.Listen.User = url.UserPassword(*onlyUser, *onlyPassword)
	}
	model.Service.TLS = new(tls.Config)
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return err
		}
		model.Service.TLS.Certificates = []tls.Certificate{cert}
	}
	model.Service.RegisterEndpoints = true
	server := model.Service.NewServer()
	defer server.Close()

	password, _ := server.URL.User.Password()
	line, err := json.Marshal(map[string]string{
		"url":      server.URL.String(),
		"server":   server.URL.Host,
		"username": server.URL.User.Username(),
		"password": password,
	})
	if err != nil {
		return err
	}
	fmt.Println(string(line))

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	// The parent test holds our stdin open; if it dies without signalling, we exit too.
	closed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(closed)
	}()
	select {
	case <-stop:
	case <-closed:
	}
	return nil
}

type vmReport struct {
	Name        string            `json:"name"`
	Template    bool              `json:"template"`
	PowerState  string            `json:"powerState"`
	NumCPU      int32             `json:"numCPU"`
	MemoryMB    int32             `json:"memoryMB"`
	GuestID     string            `json:"guestId"`
	DiskKB      []int64           `json:"diskKB"`
	Networks    []string          `json:"networks"`
	ExtraConfig map[string]string `json:"extraConfig"`
}

func inspect(rawURL, inventoryPath string) error {
	ctx := context.Background()
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	client, err := govmomi.NewClient(ctx, u, true)
	if err != nil {
		return err
	}
	defer func() { _ = client.Logout(ctx) }()

	vm, err := find.NewFinder(client.Client, true).VirtualMachine(ctx, inventoryPath)
	if err != nil {
		return err
	}
	var props mo.VirtualMachine
	if err := vm.Properties(ctx, vm.Reference(), []string{"name", "config", "runtime.powerState", "network"}, &props); err != nil {
		return err
	}
	report := vmReport{
		Name:        props.Name,
		PowerState:  string(props.Runtime.PowerState),
		ExtraConfig: map[string]string{},
		DiskKB:      []int64{},
		Networks:    []string{},
	}
	if cfg := props.Config; cfg != nil {
		report.Template = cfg.Template
		report.NumCPU = cfg.Hardware.NumCPU
		report.MemoryMB = cfg.Hardware.MemoryMB
		report.GuestID = cfg.GuestId
		for _, option := range cfg.ExtraConfig {
			value := option.GetOptionValue()
			report.ExtraConfig[value.Key] = fmt.Sprint(value.Value)
		}
		for _, device := range cfg.Hardware.Device {
			if disk, ok := device.(*types.VirtualDisk); ok {
				report.DiskKB = append(report.DiskKB, disk.CapacityInKB)
			}
		}
	}
	for _, ref := range props.Network {
		var network mo.Network
		if err := client.PropertyCollector().RetrieveOne(ctx, ref, []string{"name"}, &network); err == nil {
			report.Networks = append(report.Networks, network.Name)
		}
	}
	out, err := json.MarshalIndent(report, "", "  ")
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	return nil
}
