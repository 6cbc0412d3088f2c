#line 2 "index.cu"
