module github.com/payrail/payrail

go 1.26
