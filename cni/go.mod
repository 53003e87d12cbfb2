module contiv-py/cni

// The standard library only: the binary builds offline (GOPROXY=off, GOTOOLCHAIN=local).
go 1.24
