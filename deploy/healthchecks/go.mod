module github.com/resilientanalytics/ra/deploy/healthchecks

go 1.26.8
