module github.com/moderuntime/mode

go 1.26
