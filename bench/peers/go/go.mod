module myriad/bench/peers/go

go 1.19
