module github.com/resilientanalytics/ra/deploy/compose

go 1.26.8

require github.com/compose-spec/compose-go/v2 v2.16.2 // indirect
