// hello is kiln's example service: `kiln build` turns it into a small image.
package main

import (
	"fmt"
	"os"
	"runtime"

	"example.com/hello/internal/greet"
)

func main() {
	name := "kiln"
	if len(os.Args) > 1 {
		name = os.Args[1]
	}
	fmt.Println(greet.Hello(name))
	fmt.Printf("built with %s for %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
